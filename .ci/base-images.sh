# Sourced by .ci/compose-test and .ci/swarm-test: export PYTHON_IMAGE and
# HAPROXY_IMAGE, the base images, as CI's stand-ins built from Debian
# (.ci/standin-images) where the environment names none.
if [ -z "${PYTHON_IMAGE:-}" ] || [ -z "${HAPROXY_IMAGE:-}" ]; then
    standins=$(.ci/standin-images)
    while IFS="=" read -r standinName standinImage; do
        if [ -z "${!standinName:-}" ]; then
            export "$standinName=$standinImage"
        fi
    done <<<"$standins"
fi
