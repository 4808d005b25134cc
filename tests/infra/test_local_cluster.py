"""The local cluster's bookkeeping, without starting Ray: the ports handed to its nodes never repeat."""

import infra.local_cluster as local_cluster
from infra.local_cluster import LocalCluster


def test_a_port_handed_out_but_not_yet_bound_is_never_handed_out_again(monkeypatch, tmp_path):
    # The OS offers a port again as soon as the probing socket closes; the node it was given may not have
    # bound it yet (CI once drew the same port for the head's client server and its agent's gRPC).
    offers = iter([[5001, 5002], [5002], [5003], [5004]])
    monkeypatch.setattr(local_cluster, "free_ports", lambda count: next(offers))
    cluster = LocalCluster(str(tmp_path), gcs_port=5000, dashboard_port=5003)

    assert cluster._ports(2) == [5001, 5002]
    assert cluster._ports(1) == [5004]  # 5002 went to a node, 5003 to the dashboard
    assert sorted(cluster.assigned) == [5000, 5001, 5002, 5003, 5004]


def test_the_saved_state_keeps_the_ports_handed_out(tmp_path):
    cluster = LocalCluster(str(tmp_path), gcs_port=5000, dashboard_port=5001)
    cluster.assigned += [5002]
    cluster.save(tmp_path / "state.json")

    assert LocalCluster.load(tmp_path / "state.json").assigned == [5000, 5001, 5002]
