#!/usr/bin/env bash
# Submit this checkout's commit as a KubeRay RayJob (rayjob.yaml) on the RayCluster `comic`.
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... [AWS_ENDPOINT_URL=...]   # to upload the code
#   COMIC_STAGES="tune train register" bash infra/k8s/submit-rayjob.sh -n comic      # kubectl options after it
# The code is `git archive` of HEAD, uploaded once to s3://comic-code/<commit>.zip (Ray unpacks it as the job's
# working dir on every node); the job pulls the commit's data version itself. A dirty tree is refused.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

if [[ -n "$(git status --porcelain)" ]]; then
    echo "uncommitted changes: the job runs a commit, commit (and dvc push) first" >&2
    exit 1
fi
GIT_COMMIT=$(git rev-parse HEAD)
GIT_SHORT=${GIT_COMMIT:0:12}
CODE_URI="s3://${COMIC_CODE_BUCKET:-comic-code}/${GIT_COMMIT}.zip"
COMIC_STAGES=${COMIC_STAGES:-train register}
export GIT_COMMIT GIT_SHORT CODE_URI COMIC_STAGES

archive=$(mktemp --suffix=.zip)
trap 'rm -f "$archive"' EXIT
# One top-level folder, as Ray expects of a remote working_dir zip.
git archive --format=zip --prefix="comic-${GIT_SHORT}/" -o "$archive" HEAD
aws s3 cp --only-show-errors "$archive" "$CODE_URI"
envsubst '${GIT_COMMIT} ${GIT_SHORT} ${CODE_URI} ${COMIC_STAGES}' < infra/k8s/rayjob.yaml | kubectl "$@" apply -f -
echo "submitted RayJob comic-${GIT_SHORT} (${COMIC_STAGES}) for commit ${GIT_COMMIT}"
