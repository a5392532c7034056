# adrivefs — build, test, benchmark, install and demo.
#
#   make demo     install what is missing, build, mount the emulator's demo drive on ./mnt
#   make test     install what is missing, build, run every test (warnings are errors)
#   make bench    release build, print throughput figures and ratios
#   make install  install binaries and man pages under $(PREFIX)

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man/man1
UNITDIR     ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
FUSERMOUNT  ?= /usr/bin/fusermount3
SWIFT       ?= swift
DEMO_PORT   ?= 8787
DEMO_MNT    ?= ./mnt
APT_PACKAGES = fuse3 libfuse3-dev libcurl4-openssl-dev libsecp256k1-dev libqrencode-dev libsystemd-dev curl groff-base openssl attr socat rsync

.PHONY: all build deps test lint-man bench install uninstall demo demo-stop clean

all: build

# Installs the Debian packages the build, the tests and the benchmarks need, once.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

# Builds everything (tests included), fails on any warning in our own code, runs every test.
test: deps lint-man
	$(SWIFT) build --build-tests 2>&1 | tee .build/build.log
	@if grep -E "^/.*/(Sources|Tests|CFuse)/.*(warning|error):" .build/build.log; then \
	  echo "error: the build printed warnings in adrivefs code (see above)"; exit 1; fi
	# One suite at a time: run together, dozens of emulators, mounts and curl processes on
	# two cores stretch timing-dependent tests past their bounds (about 5.5 min in all).
	$(SWIFT) test --skip-build --no-parallel

lint-man:
	@mkdir -p .build
	@for page in man/*.1; do \
	  out=$$(groff -man -ww -z $$page 2>&1); \
	  if [ -n "$$out" ]; then echo "$$page: $$out"; exit 1; fi; \
	done

bench: deps
	$(SWIFT) build -c release --product adrivefs
	$(SWIFT) build -c release --product adrivefs-emulator
	$(SWIFT) build -c release --product adrivefs-bench
	.build/release/adrivefs-bench

install: deps
	$(SWIFT) build -c release --product adrivefs
	$(SWIFT) build -c release --product adrivefs-emulator
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 0755 .build/release/adrivefs $(DESTDIR)$(BINDIR)/adrivefs
	install -m 0755 .build/release/adrivefs-emulator $(DESTDIR)$(BINDIR)/adrivefs-emulator
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@FUSERMOUNT@|$(FUSERMOUNT)|g' systemd/adrivefs@.service.in > $(DESTDIR)$(UNITDIR)/adrivefs@.service
	install -m 0644 $(DESTDIR)$(UNITDIR)/adrivefs@.service $(DESTDIR)$(USERUNITDIR)/adrivefs@.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/adrivefs $(DESTDIR)$(BINDIR)/adrivefs-emulator
	rm -f $(DESTDIR)$(MANDIR)/adrivefs.1 $(DESTDIR)$(MANDIR)/adrivefs-emulator.1
	rm -f $(DESTDIR)$(UNITDIR)/adrivefs@.service $(DESTDIR)$(USERUNITDIR)/adrivefs@.service

# The no-account demo: the emulator with the demo drive, mounted on $(DEMO_MNT).
demo: build
	DEMO_PORT=$(DEMO_PORT) scripts/demo.sh $(DEMO_MNT)

demo-stop:
	-fusermount3 -u -z $(DEMO_MNT)-share
	-fusermount3 -u -z $(DEMO_MNT)
	-kill $$(cat .build/demo-emulator.pid) 2>/dev/null
	rm -f .build/demo-emulator.pid

clean:
	rm -rf .build
