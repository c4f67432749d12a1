#!/usr/bin/python3
"""An OCI image archive of one uncompressed layer, for `ctr images
import` (tests/bats/shimv2.bats: images are made here, no registry is
reached).

    oci_image.py ROOTFS NAME OUT.tar [CMD...]

NAME is the image's full reference (docker.io/library/x:tag); CMD its
Cmd (default sh), with PATH in its Env.
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def add(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def blob(tf, data):
    """data as a content-addressed blob: its descriptor's digest, size."""
    hexd = hashlib.sha256(data).hexdigest()
    add(tf, "blobs/sha256/" + hexd, data)
    return "sha256:" + hexd, len(data)


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rootfs, name, out, cmd = argv[1], argv[2], argv[3], argv[4:]
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w",
                      format=tarfile.PAX_FORMAT) as lt:
        for e in sorted(os.listdir(rootfs)):
            lt.add(os.path.join(rootfs, e), arcname=e)
    with tarfile.open(out, "w") as tf:
        ldig, lsize = blob(tf, layer.getvalue())
        config = {
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],
                       "Cmd": cmd or ["sh"]},
            # uncompressed: the layer's digest is its diff id
            "rootfs": {"type": "layers", "diff_ids": [ldig]},
        }
        cdig, csize = blob(tf, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType":
                       "application/vnd.oci.image.config.v1+json",
                       "digest": cdig, "size": csize},
            "layers": [{"mediaType":
                        "application/vnd.oci.image.layer.v1.tar",
                        "digest": ldig, "size": lsize}],
        }
        mdig, msize = blob(tf, json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdig, "size": msize,
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name":
                    name.rsplit(":", 1)[-1]}}]}
        add(tf, "index.json", json.dumps(index).encode())
        add(tf, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
