# pyckpt — the human entry point.
#   make demo      install into .venv and run the demo dump + restore
#   make test      every test tier CI runs: unit, host (ptrace), the quick apps, vm (kmod in a qemu guest)
#   make test-apps real programs (tmux, make -j2, MariaDB, Java, git gc...) dumped and restored on the host
#   make kmod      build crak.ko against the running kernel (or KDIR=...)
#   make fuzz      long image-fuzz campaign (FUZZ_CASES, FUZZ_SEED); `make test` runs a quick one
#   make protos    regenerate pyckpt/images/proto/*_pb2.py after editing a .proto

PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: all venv deps demo workloads test test-unit test-host test-apps test-apps-quick fuzz kmod protos clean

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
	$(PY) -m pip install --quiet -e '.[dev,bench]'

workloads: deps
	$(MAKE) -C tests/workloads

demo: deps venv workloads
	$(PY) tools/demo.py

test-unit: venv
	$(PYTEST) -q tests/unit

test-host: venv workloads
	$(PYTEST) -q tests/host

# The apps tier installs the Debian packages of its programs itself (tests/apps/conftest.py).
test-apps: deps venv
	$(PYTEST) -q -rxX tests/apps

test-apps-quick: deps venv
	$(PYTEST) -q -rxX -m quick tests/apps

test: deps venv workloads
	$(PYTEST) -q tests/unit tests/host
	$(PYTEST) -q -rxX -m quick tests/apps
	$(MAKE) vm-test ARCH=x86_64

# Not in CI's critical path: tests/host/test_fuzz_images.py runs a quick one in `make test`.
FUZZ_CASES ?= 10000
FUZZ_SEED ?= 100000
fuzz: venv workloads
	nice -n 19 $(PY) tests/fuzz/imagefuzz.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --screen \
		--workloads counter,tree,files,anonfds,signals,memfdmap,threads,cowtree,fifo,posixtimers,unix-pairs,sysvipc

kmod:
	$(MAKE) -C kmod

protos:
	$(PY) -m pip install --quiet grpcio-tools==1.74.0
	$(PY) -m grpc_tools.protoc -I. --python_out=. pyckpt/images/proto/*.proto

clean:
	$(MAKE) -C tests/workloads clean
	-$(MAKE) -C kmod clean

include mk/vm.mk
