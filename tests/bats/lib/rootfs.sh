# Busybox root file systems for agent tests (sourced by bats files).
#
#   make_rootfs DIR   DIR/bin/busybox (static) with its applets as
#                     symlinks, /etc/passwd and /etc/group, and the empty
#                     directories a container spec mounts over.
#   spec_json ARGS... an OCI config.json (as compact JSON) running ARGS,
#                     root "<cid>/rootfs"; SPEC_* variables adjust it.

BUSYBOX=${BUSYBOX:-/bin/busybox}

# What tests/run sets, for a file run by hand with bats from the top
# of the tree.
: "${BUILD:=build}"
: "${HUSK_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
export BUILD HUSK_SRC

make_rootfs() {
	local dir=$1 a
	mkdir -p "$dir"/bin "$dir"/etc "$dir"/proc "$dir"/sys "$dir"/dev \
		"$dir"/tmp "$dir"/root "$dir"/work
	cp "$BUSYBOX" "$dir/bin/busybox"
	for a in sh echo cat id ps sleep true false env pwd ls grep head \
		wc kill mkdir touch stat stty tty printf test ln rm cut tr \
		sed awk hostname uname readlink mount umount ulimit \
		dd seq trap nproc which expr nc ping ip ifconfig route; do
		ln -sf busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
		>"$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}
