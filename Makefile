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

# System packages the tool and its tests need (root; Debian/Ubuntu).
deps:
	@if ! command -v gcc >/dev/null || ! command -v make >/dev/null; then \
		apt-get update && apt-get install -y --no-install-recommends gcc make libc6-dev; fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

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
