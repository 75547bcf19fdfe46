# Stand-in for pytorch/pytorch (CI cannot pull images): Debian's Python 3.11 with the project's
# pinned torch and torchvision installed system-wide, from the same files that
# `pip install torch==2.14.1 torchvision==0.29.1` takes on the host. docker/test-stack.sh builds
# it FROM a Debian rootfs it makes with debootstrap, mounting the host's pip sources read-only.
ARG ROOTFS_IMAGE=localhost/hpsearch-test/debian:bookworm
FROM ${ROOTFS_IMAGE}

# The official image's pip reaches PyPI; this one reads the host's local copies first, which
# the build mounts (podman build --volume), then PyPI.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
ARG PIP_FIND_LINKS=""
ARG PIP_EXTRA_INDEX_URL=""
RUN set -eux; \
    PIP_FIND_LINKS="$PIP_FIND_LINKS" PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" \
        python3 -m pip install --break-system-packages torch==2.14.1 torchvision==0.29.1; \
    ln -sf /usr/bin/python3 /usr/local/bin/python; \
    python -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
CMD ["python3"]
