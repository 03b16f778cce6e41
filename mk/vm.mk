# VM test tier (tools/vm/, tests/vm/): include from the top-level Makefile.
#   make vm-test ARCH=x86_64|aarch64|mips64el
# Boots Debian's own 6.1 kernel under qemu (TCG), loads kmod/crak.ko and runs
# the kmod/host test suites inside the guest.  See tools/vm/README.md.

ARCH ?= x86_64
VM_ROOT := $(patsubst %/,%,$(dir $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))))
VM_TOOL := python3 $(VM_ROOT)/tools/vm/vm.py
VM_PYTHON ?= $(if $(wildcard $(VM_ROOT)/.venv/bin/python),$(VM_ROOT)/.venv/bin/python,python3)
# extra arguments for pytest tests/vm, e.g. VM_PYTEST_ARGS=-x
VM_PYTEST_ARGS ?=

.PHONY: vm-deps vm-fetch vm-rootfs vm-module vm-initramfs vm-run vm-test vm-test-full

vm-deps:
	sh $(VM_ROOT)/tools/vm/install-deps.sh $(ARCH)

vm-fetch: vm-deps
	$(VM_TOOL) fetch --arch $(ARCH)

# only aarch64/mips64el need a guest-arch rootfs; a no-op for x86_64
vm-rootfs: vm-fetch
	$(VM_TOOL) build-rootfs --arch $(ARCH)

vm-module: vm-fetch
	$(VM_TOOL) build-module --arch $(ARCH)

vm-initramfs: vm-module
	$(VM_TOOL) build-initramfs --arch $(ARCH)

# run one command in the guest: make vm-run CMD='uname -a'
vm-run: vm-initramfs vm-rootfs
	$(VM_TOOL) run --arch $(ARCH) $(if $(CMD),--guest-cmd '$(CMD)')

vm-test: vm-initramfs vm-rootfs
	cd $(VM_ROOT) && PYCKPT_VM_ARCH=$(ARCH) $(VM_PYTHON) -m pytest -p no:cacheprovider -rs --tb=short $(VM_PYTEST_ARGS) tests/vm

# every host test under both backends in the guest (CI runs the trimmed default)
vm-test-full:
	$(MAKE) vm-test ARCH=$(ARCH) PYCKPT_VM_RUNS=full
