"""A multi-node Ray cluster on this one machine: the loopback stand-in for a real cluster (tests, benchmark).

    eval "$(python -m infra.local_cluster up --state /tmp/comic-cluster.json --head-cpus 1 --worker-cpus 1)"
    ray job submit --working-dir . -- python ...        # or infra/submit-job.sh; `up` exported RAY_ADDRESS
    python -m infra.local_cluster down --state /tmp/comic-cluster.json

Each node is a `ray start --block` in its own process group with its own ports, so a node is stopped (or
killed, as a machine dies) with killpg of its group and nothing else. Never `ray stop` here: it stops every
Ray process of this user on the machine, other sessions' included. Each node has its own loopback
address (127.0.0.2, .3, ...) and temp dir; they share the filesystem, so a local folder is a valid shared
`storage_path` here; on a real cluster that is S3 or a volume every node mounts (docs/cluster.md). Nodes
run the venv's `ray` with the venv first on PATH, so jobs find the project's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from comic.env import QUIET

BIN = Path(sys.executable).parent
# comic's quiet environment (comic/env.py), one torch thread per worker, and fast node-death detection: the
# GCS declares a silent node dead after period * threshold (here 3 s, not 30 s) and Ray Train reschedules.
NODE_ENV = {
    **QUIET,
    "OMP_NUM_THREADS": "1",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
OBJECT_STORE_BYTES = 150 * 1024**2  # per node; the jobs pass no large objects
HEAD_IP = "127.0.0.2"


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together, so they cannot repeat)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Node:
    name: str
    ip: str  # its own loopback address, as if it were another machine
    pid: int  # leader of the node's process group (`ray start --block`)
    cpus: int


@dataclass
class LocalCluster:
    temp_dir: str
    gcs_port: int
    dashboard_port: int
    nodes: list[Node] = field(default_factory=list)
    started: int = 0  # nodes ever started: the next one's address is 127.0.0.<2 + started>
    assigned: list[int] = field(default_factory=list)  # every port handed out, bound yet or not

    def __post_init__(self) -> None:
        self.assigned = sorted({*self.assigned, self.gcs_port, self.dashboard_port})

    def _ports(self, count: int) -> list[int]:
        """Free ports that no component of this cluster was given: a port handed out but not bound
        yet (its node still starting) is free to the OS, and Ray refuses a node whose ports repeat."""
        while True:
            ports = free_ports(count)
            if not set(ports) & set(self.assigned):
                self.assigned += ports
                return ports

    @property
    def gcs_address(self) -> str:
        return f"{HEAD_IP}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """What `ray job submit --address` and RAY_ADDRESS take for jobs."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def token_path(self) -> Path:
        return Path(self.temp_dir) / "auth_token"

    def client_env(self) -> dict[str, str]:
        """Environment of a client (`ray job submit`, `ray.init`): Ray's token auth with this cluster's
        token. A cluster of its own token keeps working whatever ~/.ray/auth_token holds."""
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_ADDRESS": self.dashboard_url,
        }

    def api(self, path: str, timeout: float = 10.0):
        """GET a dashboard endpoint (jobs, state API) with the token; returns the decoded JSON."""
        request = urllib.request.Request(
            self.dashboard_url + path, headers={"Authorization": f"Bearer {self.token_path.read_text().strip()}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    # ----------------------------------------------------------------------------------------- nodes
    def _start(self, name: str, args: list[str], cpus: int, ip: str) -> Node:
        log = open(Path(self.temp_dir) / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        env = {**os.environ, **NODE_ENV, **self.client_env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        env.pop("RAY_ADDRESS")  # a node joins through --address, never a leftover of the caller
        process = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        node = Node(name, ip, process.pid, cpus)
        self.nodes.append(node)
        return node

    def _node_args(self, cpus: int, resources: dict) -> tuple[list[str], str]:
        # Every node on its own address of 127.0.0.0/8 (Linux routes all of it to `lo`). Not 127.0.0.1:
        # Ray replaces that one by the address of the default route, which is not loopback.
        ip = f"127.0.0.{2 + self.started}"
        self.started += 1
        manager, objects, agent, agent_grpc, env_agent, metrics = self._ports(6)
        return [
            f"--node-ip-address={ip}",
            f"--num-cpus={cpus}",
            "--num-gpus=0",
            f"--resources={json.dumps(resources)}",
            f"--node-manager-port={manager}",
            f"--object-manager-port={objects}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={env_agent}",
            f"--metrics-export-port={metrics}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            # Its own temp dir, as on its own machine: nodes sharing one would share (and garbage-collect)
            # each other's unpacked job working dirs and re-publish each other's logs.
            f"--temp-dir={self.temp_dir}/n{self.started + 1}",
            "--min-worker-port=0",  # workers take ports from the OS: no range for two raylets to race for
            "--max-worker-port=0",
        ], ip

    def start_head(self, cpus: int) -> Node:
        args, ip = self._node_args(cpus, {"head": 1})
        args += [
            "--head",
            f"--port={self.gcs_port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={self._ports(1)[0]}",
        ]
        return self._start("head", args, cpus, ip)

    def add_worker(self, cpus: int, name: str | None = None) -> Node:
        args, ip = self._node_args(cpus, {})
        args.append(f"--address={self.gcs_address}")
        return self._start(name or f"worker{self.started - 1}", args, cpus, ip)

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        """Kill every process of one node (raylet, its workers, agents), as if its machine died."""
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            pass
        self.nodes = [n for n in self.nodes if n.pid != node.pid]

    # ---------------------------------------------------------------------------------------- waiting
    def alive_nodes(self) -> list[dict]:
        """The alive nodes from the state API: node_id, resources_total, is_head_node, ..."""
        query = "filter_keys=state&filter_predicates=%3D&filter_values=ALIVE&limit=100"
        return self.api(f"/api/v0/nodes?{query}")["data"]["result"]["result"]

    def wait_for_nodes(self, count: int, timeout: float = 90.0) -> list[dict]:
        """Block until `count` nodes are alive and the dashboard (the job API) answers."""
        deadline, last_error = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self._raise_if_a_node_exited()
            try:
                alive = self.alive_nodes()
                if len(alive) >= count:
                    return alive
            except Exception as err:  # the dashboard is still starting
                last_error = err
            time.sleep(1.0)
        raise TimeoutError(f"{count} Ray nodes not alive after {timeout:.0f} s ({last_error}); logs in {self.temp_dir}")

    def _raise_if_a_node_exited(self) -> None:
        for node in self.nodes:
            try:
                finished, _ = os.waitpid(node.pid, os.WNOHANG)
            except ChildProcessError:  # not our child (state read back by `down`)
                continue
            if finished:
                log = (Path(self.temp_dir) / f"{node.name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Ray node {node.name} exited during start-up:\n{log}")

    # ----------------------------------------------------------------------------------------- life
    def down(self, grace: float = 2.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after `grace`: a throwaway cluster need not drain, and its
        raylets take 10 s to) and remove the temp dir."""
        for node in reversed(self.nodes):
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for node in self.nodes:
            while time.monotonic() < deadline and _group_alive(node.pid):
                time.sleep(0.2)
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(node.pid, os.WNOHANG)
            except ChildProcessError:
                pass
        # Killed processes may still write logs for a moment: remove the temp dir once they are gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_group_alive(node.pid) for node in self.nodes):
            time.sleep(0.2)
        self.nodes = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LocalCluster:
        raw = json.loads(Path(path).read_text())
        raw["nodes"] = [Node(**n) for n in raw["nodes"]]
        return cls(**raw)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for a reaper do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def start_cluster(head_cpus: int = 1, worker_cpus: list[int] | tuple[int, ...] = (1,)) -> LocalCluster:
    """A head of `head_cpus` CPUs (with the custom resource `head`) and one worker node per entry."""
    # Short: Ray's Unix sockets live under it and a socket path may not exceed 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    gcs_port, dashboard_port = free_ports(2)
    cluster = LocalCluster(temp_dir, gcs_port, dashboard_port)
    cluster.token_path.write_text(secrets.token_hex(32))
    cluster.token_path.chmod(0o600)
    try:
        cluster.start_head(head_cpus)
        cluster.wait_for_nodes(1)
        for cpus in worker_cpus:
            cluster.add_worker(cpus)
        cluster.wait_for_nodes(1 + len(worker_cpus))
    except BaseException:
        cluster.down(grace=2)
        raise
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--state", required=True, help="JSON file that remembers the nodes (written by up)")
    parser.add_argument("--head-cpus", type=int, default=1)
    parser.add_argument("--worker-cpus", type=int, nargs="*", default=[1], help="one number per worker node")
    args = parser.parse_args()
    if args.action == "up":
        cluster = start_cluster(args.head_cpus, args.worker_cpus)
        cluster.save(args.state)
        print(f"{len(cluster.nodes)} nodes up, GCS at {cluster.gcs_address}", file=sys.stderr)
        for key, value in cluster.client_env().items():  # for `eval`: what a client needs to reach it
            print(f"export {key}={value}")
    else:
        LocalCluster.load(args.state).down()
        Path(args.state).unlink(missing_ok=True)
        print("cluster down")


if __name__ == "__main__":
    main()
