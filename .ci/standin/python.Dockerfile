# CI's stand-in for the official python image (the Dockerfile's PYTHON_IMAGE),
# built from Debian alone: public image registries cannot be reached from CI.
# Like a company's own base image, it carries the certificate authorities the
# CI machine's pip trusts, and a pip setting that names them.
ARG BASE
FROM ${BASE}
ENV LANG=C.UTF-8
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY ca-bundle.crt /usr/local/share/xform-ci/ca-bundle.crt
RUN printf '[global]\ncert = /usr/local/share/xform-ci/ca-bundle.crt\n' > /etc/pip.conf
CMD ["python3"]
