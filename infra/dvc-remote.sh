#!/usr/bin/env bash
# The DVC remote on S3-compatible storage: where every data version lives, so a cluster job pulls exactly the
# version that its commit's dvc.lock pins (no hand copying).
#
#   export DVC_REMOTE_URL=s3://comic-dvc/store DVC_REMOTE_ENDPOINT=https://minio.example:9000   # endpoint optional
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...        # from your secret store, never committed
#   bash infra/dvc-remote.sh push            # after `dvc repro`, before `git commit` + submitting the job
#   bash infra/dvc-remote.sh pull            # in the job (infra/cluster_job.py): data/plt and data/images
#
# The remote is written to .dvc/config.local (git-ignored): the repo names no bucket and holds no credential.
# DVC's S3 client takes the keys from the environment (AWS_*), an instance profile or a mounted secret.
# A job's working dir has no .git (Ray uploads the tree without it): pull then runs DVC without SCM, which
# reads dvc.lock as it is, and DVC checks every pulled file against the md5 that dvc.lock pins.
# Any DVC URL works (a local folder in the tests). S3 needs the extra `dvc-s3` (infra/image/Dockerfile).
set -euo pipefail

action=${1:?usage: dvc-remote.sh configure|push|pull [dvc targets...]}
shift
: "${DVC_REMOTE_URL:?set DVC_REMOTE_URL, e.g. s3://comic-dvc/store}"
export DVC_NO_ANALYTICS=1
dvc=(dvc)
command -v dvc >/dev/null || dvc=("$(command -v python || command -v python3)" -m dvc)

configure() {
    "${dvc[@]}" remote add --local --force --default storage "$DVC_REMOTE_URL"
    if [[ -n "${DVC_REMOTE_ENDPOINT:-}" ]]; then
        "${dvc[@]}" remote modify --local storage endpointurl "$DVC_REMOTE_ENDPOINT"
    fi
}

case "$action" in
    configure)
        configure
        ;;
    push)
        configure
        "${dvc[@]}" push "$@"
        ;;
    pull)
        if ! git rev-parse --git-dir >/dev/null 2>&1; then
            "${dvc[@]}" config --local core.no_scm true
        fi
        configure
        [ $# -gt 0 ] || set -- data/plt data/images
        "${dvc[@]}" pull "$@"
        ;;
    *)
        echo "unknown action $action: configure, push or pull" >&2
        exit 2
        ;;
esac
