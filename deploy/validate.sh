#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests under deploy/k8s.
#
# Renders every kustomization (deploy/k8s and each service folder) with
# `kubectl kustomize` and checks every resource against the Kubernetes OpenAPI
# schemas shipped inside the PyPI package kubernetes-validate, in strict mode
# (unknown fields are errors). The example Secrets (*.example.yaml), which no
# kustomization includes, are validated as they are. No cluster, no network.
#
# Without kubectl on PATH it warns and validates the raw YAML files instead
# (every *.yaml under deploy/k8s except kustomization.yaml).
#
# Needs: pip install kubernetes-validate
# Env:   K8S_VERSION  Kubernetes schema version (default 1.30.0)
#        KUBECTL      kubectl command to use (default kubectl)
# Prints one line per validated file; exits non-zero if any file fails.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.30.0}"
KUBECTL="${KUBECTL:-kubectl}"

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$deploy_dir")"
k8s_dir="$deploy_dir/k8s"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "error: kubernetes-validate not found on PATH; install it with: pip install kubernetes-validate" >&2
  exit 2
fi
validator_version="$(kubernetes-validate --version 2>&1)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

rel() { echo "${1#"$repo_root"/}"; }
indent() { sed 's/^/        /'; }

# validate FILE LABEL: one line for FILE, plus the validator's complaints if any.
validate() {
  local file="$1" label="$2" out rc=0 resources problems
  out="$(kubernetes-validate --strict --kubernetes-version "$K8S_VERSION" "$file" 2>&1)" || rc=$?
  resources="$(grep -c '^INFO ' <<<"$out" || true)"
  # kubernetes-validate exits 0 on a WARN ("couldn't find schema"), e.g. for a
  # misspelt kind or apiVersion. Anything that is not an INFO pass counts as
  # a failure here, and so does a file with no resources at all.
  problems="$(grep -v '^INFO ' <<<"$out" || true)"
  problems="${problems//"$file"/$label}"   # name the source, not the temp file
  if [[ $rc -eq 0 && -z "$problems" && $resources -gt 0 ]]; then
    echo "ok    $label: $resources resource(s) valid against Kubernetes $K8S_VERSION"
    passed=$((passed + 1))
  else
    echo "FAIL  $label (exit $rc, $resources resource(s) passed)"
    [[ -n "$problems" ]] && indent <<<"$problems"
    [[ $resources -eq 0 && -z "$problems" ]] && echo "        no resources found"
    failed=$((failed + 1))
  fi
  return 0
}

echo "kubernetes-validate $validator_version, strict, Kubernetes $K8S_VERSION schemas"

if command -v "$KUBECTL" >/dev/null 2>&1; then
  # Every folder with a kustomization: the top level and each service.
  while IFS= read -r dir; do
    label="$(rel "$dir") (kubectl kustomize)"
    rendered="$tmp/$(rel "$dir" | tr '/' '_').yaml"
    if err="$("$KUBECTL" kustomize "$dir" 2>&1 >"$rendered")"; then
      validate "$rendered" "$label"
    else
      echo "FAIL  $label: kustomize failed"
      indent <<<"$err"
      failed=$((failed + 1))
    fi
  done < <(find "$k8s_dir" -name kustomization.yaml -type f | sed 's#/kustomization\.yaml$##' | LC_ALL=C sort)
  # Files no kustomization includes.
  while IFS= read -r file; do
    validate "$file" "$(rel "$file")"
  done < <(find "$k8s_dir" -name '*.example.yaml' -type f | LC_ALL=C sort)
else
  echo "warning: '$KUBECTL' not found on PATH: skipping kustomize rendering, validating the raw YAML files instead" >&2
  while IFS= read -r file; do
    validate "$file" "$(rel "$file")"
  done < <(find "$k8s_dir" \( -name '*.yaml' -o -name '*.yml' \) ! -name kustomization.yaml ! -name kustomization.yml -type f | LC_ALL=C sort)
fi

if [[ $((passed + failed)) -eq 0 ]]; then
  echo "error: no manifests found under $(rel "$k8s_dir")" >&2
  exit 1
fi
echo "validate.sh: $passed file(s) valid, $failed invalid"
[[ $failed -eq 0 ]]
