# Sourced by .ci/checkov.sh and .ci/checkov-k8s.sh: one checkov, in its own virtualenv.
#
# checkov's dependencies conflict with the project's pins (pyathena, prefect-aws), so it lives in
# .venv-checkov (git-ignored), created or repaired on first use, and runs offline.
CHECKOV_VERSION="3.3.30"
VENV="${ROOT}/.venv-checkov"
PYTHON="${PYTHON:-python3}"

if ! "${VENV}/bin/checkov" --version 2>/dev/null | grep -qx "${CHECKOV_VERSION}"; then
  echo "checkov: installing checkov ${CHECKOV_VERSION} into ${VENV}"
  "${PYTHON}" -m venv --clear "${VENV}"
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
fi

# Offline: no Prisma Cloud mapping/guideline download, no version check.
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export LOG_LEVEL="${LOG_LEVEL:-WARNING}"
