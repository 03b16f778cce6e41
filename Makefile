# pyckpt — the human entry point.
#   make demo      install into .venv and run the demo dump + restore
#   make test      every test tier CI runs: unit, host (ptrace), vm (kmod in a qemu guest)
#   make kmod      build crak.ko against the running kernel (or KDIR=...)
#   make protos    regenerate pyckpt/images/proto/*_pb2.py after editing a .proto

PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: all venv deps demo workloads test test-unit test-host kmod protos clean

all: venv

# System packages the tool and its tests need (root; Debian/Ubuntu): a C
# compiler for the workloads, and cross compilers + kernel headers so the unit
# tier can prove the arch tables and the uAPI mirror for aarch64 and mips64;
# nftables: dumping an established TCP connection blocks its packets with nft.
APT_DEPS := gcc make libc6-dev nftables gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross \
	gcc-mips64el-linux-gnuabi64 linux-libc-dev-mips64el-cross
deps:
	@missing=$$(for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'

workloads: deps
	$(MAKE) -C tests/workloads

demo: deps venv workloads
	$(PY) tools/demo.py

test-unit: venv
	$(PYTEST) -q tests/unit

test-host: venv workloads
	$(PYTEST) -q tests/host

test: deps venv workloads
	$(PYTEST) -q tests/unit tests/host
	$(MAKE) vm-test ARCH=x86_64

kmod:
	$(MAKE) -C kmod

protos:
	$(PY) -m pip install --quiet grpcio-tools==1.74.0
	$(PY) -m grpc_tools.protoc -I. --python_out=. pyckpt/images/proto/*.proto

clean:
	$(MAKE) -C tests/workloads clean
	-$(MAKE) -C kmod clean

include mk/vm.mk
