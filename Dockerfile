# The gateway's image: the project's wheel, built in one stage and installed
# with its runtime dependencies only (no pip, no compiler, no tests) into a
# virtual environment on a slim Python, run by a user without privileges.
#
#     docker build -t xform-gateway .
#     docker run --rm -p 127.0.0.1:8080:8080 xform-gateway
#
# The entrypoint is the xform command: by default "xform serve" on every
# interface (ports 10001 netstring, 10002 AMP, 8080 web); any other command
# works too ("docker run --rm xform-gateway transforms --server ..."), and the
# bundled poems are in the working directory: poems/science.txt, ...
#
# PYTHON_IMAGE is the base image: the official python:3.12-slim unless told
# otherwise (any Debian-like image with python3 and its venv module will do).

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS base
ENV PATH=/opt/xform/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 xform \
    && useradd --system --uid 10001 --gid xform --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin xform

# The wheel, built by a pip of its own in /opt/pip, and installed with its
# dependencies into /opt/xform, a virtual environment without pip.
FROM base AS build
RUN python3 -m venv /opt/pip
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY protocols protocols
COPY service service
COPY twisted twisted
COPY poems poems
RUN /opt/pip/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python3 -m venv --without-pip /opt/xform \
    && /opt/pip/bin/pip --python /opt/xform/bin/python install --no-cache-dir /wheels/*.whl

# The integration suite (tests/integration/), as the compose file's "tests"
# service runs it: the installed gateway and clients, and the test tools.
FROM build AS tests
COPY tests/integration/requirements.txt /src/tests/integration/
RUN /opt/pip/bin/pip --python /opt/xform/bin/python install --no-cache-dir \
        -r /src/tests/integration/requirements.txt
WORKDIR /opt/xform-tests
COPY tests/__init__.py tests/
COPY tests/integration tests/integration
USER xform
CMD ["pytest", "-p", "no:cacheprovider", "tests/integration"]

# The image itself: the virtual environment alone on the base image.
FROM base
COPY --from=build /opt/xform /opt/xform
WORKDIR /opt/xform/share/xform-gateway
USER xform
EXPOSE 10001 10002 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["xform"]
CMD ["serve", "--netstring", "tcp:10001:interface=0.0.0.0", "--amp", "tcp:10002:interface=0.0.0.0", \
     "--web", "tcp:8080:interface=0.0.0.0"]
