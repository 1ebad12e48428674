#!/usr/bin/env bash
# The binary the container image ships, built the way the Dockerfile builds
# it: `cargo build --release --locked`, debug info stripped (the release
# profile keeps line tables for profiling; the image does not need them),
# and the shared libraries that the distroless cc runtime image lacks
# copied beside it.
#
#   scripts/build-image-binary.sh OUT_DIR      # OUT_DIR/bin/scrubs, OUT_DIR/lib/*.so*
#
# It then checks the result: every library the binary needs is either glibc
# or libgcc (in the runtime image) or in OUT_DIR/lib; the binary starts from
# OUT_DIR with only those libraries (`scrubs --version`, `scrubs rules
# test` on the built-in pack); and it prints sizes and SHA-256 sums.
# CI runs it from scripts/check-deploy.sh. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:?usage: scripts/build-image-binary.sh OUT_DIR}"
mkdir -p "$out/bin" "$out/lib"
out="$(cd "$out" && pwd)"
target="${CARGO_TARGET_DIR:-target}"

nice -n 5 cargo build --release --locked --bin scrubs
cp "$target/release/scrubs" "$out/bin/scrubs"
strip --strip-debug "$out/bin/scrubs"

# What the distroless cc image (Debian 12) provides: glibc and libgcc.
in_runtime='^(linux-vdso|libc|libm|libgcc_s|ld-linux[^ ]*|libpthread|libdl|librt)\.so'
rm -f "$out/lib/"*
missing=0
while read -r name _ path _; do
    if [[ "$name" =~ $in_runtime ]]; then
        continue
    fi
    if [[ -z "$path" || "$path" == "not" ]]; then
        echo "build-image-binary: $name not found" >&2
        missing=1
        continue
    fi
    cp -L "$path" "$out/lib/$name"
done < <(ldd "$out/bin/scrubs" | sed -n 's/^\s*\(\S\+\) => \(\S\+\).*/\1 => \2 x/p')
if (( missing )); then
    exit 1
fi

# It starts with nothing but those libraries beside the system's glibc.
env -i LD_LIBRARY_PATH="$out/lib" "$out/bin/scrubs" --version
if env -i LD_LIBRARY_PATH="$out/lib" ldd "$out/bin/scrubs" | grep -v -E "$out/lib|linux-vdso|libc\.so|libm\.so|libgcc_s|ld-linux" | grep -q '=>'; then
    echo "build-image-binary: a library resolves outside $out/lib and the runtime set:" >&2
    env -i LD_LIBRARY_PATH="$out/lib" ldd "$out/bin/scrubs" >&2
    exit 1
fi
# The built-in rule pack compiles and its examples pass in this binary.
env -i LD_LIBRARY_PATH="$out/lib" "$out/bin/scrubs" rules test >/dev/null
ls -l "$out/bin" "$out/lib"
(cd "$out" && sha256sum bin/scrubs lib/*)
