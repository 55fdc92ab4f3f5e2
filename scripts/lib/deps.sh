# Debian packages warden needs to build, test and run its demo. Sourced by
# scripts/install-deps.
WARDEN_BUILD_PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev libnng-dev libhiredis-dev libpq-dev libmsgpack-dev libcurl4-openssl-dev
  libinih-dev libjansson-dev libcmocka-dev"
WARDEN_RUN_PKGS="redis-server postgresql procps python3"
WARDEN_TEST_PKGS="python3 python3-pytest python3-msgpack nng-utils valgrind prometheus wrk nginx chromium python3-yaml"
