#!/bin/bash
# A CI step: validate every vnet topology in a repository and fail the job if one is invalid.
#
#   examples/ci-validate.sh                  # every *.yaml / *.yml under ./topologies
#   examples/ci-validate.sh labs/ other/x.yaml
#
# A directory argument is searched recursively for YAML files that look like topologies (a
# top-level `nodes:`, `switches:` or `links:` key); a file argument is always validated.
# Uses `vnet` from PATH, or the command in $VNET (e.g. VNET=.venv/bin/vnet).
# Exit status: 0 all valid (warnings are printed but do not fail), 65 a topology is invalid
# (vnet's EX_DATAERR; the diagnostics say file:line:col and why), anything else: vnet itself failed.
# Under GitHub Actions each diagnostic also becomes an annotation on the file and line.
#
# GitHub Actions:   - run: examples/ci-validate.sh
# GitLab CI:        script: [examples/ci-validate.sh]
set -uo pipefail

vnet=${VNET:-vnet}
(($#)) || set -- topologies

files=()
for arg in "$@"; do
  if [[ -d $arg ]]; then
    while IFS= read -r -d '' file; do
      grep -qE '^(nodes|switches|links):' "$file" && files+=("$file")
    done < <(find "$arg" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z)
  elif [[ -f $arg ]]; then
    files+=("$arg")
  else
    echo "ci-validate: $arg: no such file or directory" >&2
    exit 66
  fi
done
if ((${#files[@]} == 0)); then
  echo "ci-validate: no topology files found in: $*" >&2
  exit 0
fi

echo "ci-validate: ${#files[@]} topology file(s)" >&2
$vnet validate "${files[@]}"
status=$?

if ((status == 65)) && [[ ${GITHUB_ACTIONS:-} == true ]]; then
  # One annotation per diagnostic, from the JSON report.
  $vnet validate --json "${files[@]}" 2>/dev/null | "${PYTHON:-python3}" -c '
import json, sys
def escape(text):  # GitHub workflow-command data escaping
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
for report in json.load(sys.stdin):
    for d in report["diagnostics"]:
        level = "error" if d["severity"] == "error" else "warning"
        code, attr, message, hint = d["code"], d["attr"], d["message"], d["hint"]
        where = attr + ": " if attr else ""
        text = escape(f"[{code}] {where}{message} (hint: {hint})")
        file, line, column = d["file"], d["line"], d["column"]
        print(f"::{level} file={file},line={line},col={column}::{text}")
' || true
fi

case $status in
  0) echo "ci-validate: all topologies are valid" >&2 ;;
  65) echo "ci-validate: invalid topology (see the diagnostics above); failing the job" >&2 ;;
  *) echo "ci-validate: vnet failed with exit status $status" >&2 ;;
esac
exit "$status"
