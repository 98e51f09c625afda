# Shared by image/build (x86-64 disk image) and image/jetson/build (arm64 tree for the Jetson):
# what both lay out the same way. Needs scripts/lib.sh sourced first (REPO, STORE, die).
# shellcheck shell=bash

# source_commit: the commit the image is built from (short id), as build-info records it.
source_commit() {
  git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown
}

# image_bins: the binaries the units start, and the admin tool (one per line).
image_bins() {
  { sed -n 's|^ExecStart=/usr/bin/\([^ ]*\).*|\1|p' "$REPO"/systemd/*.service; echo valisectl; } | sort -u
}

# stage_common STAGE: units, sysusers, tmpfiles, the daemons' configuration and the default
# models (catalog: default = true) with a manifest restricted to them, under STAGE (a root
# file system tree). The binaries are the caller's (they differ per architecture).
stage_common() {
  local stage=$1 img=$REPO/image f m store_slot
  store_slot=$(readlink -f "$STORE/current") || die "no model store at $STORE (scripts/setup)"
  install -d "$stage/usr/bin" "$stage/usr/lib/systemd/system" "$stage/usr/lib/sysusers.d" \
    "$stage/usr/lib/tmpfiles.d" "$stage/etc/valise" "$stage/usr/lib/valise/models/factory"
  install -m 0644 "$REPO"/systemd/*.service "$REPO"/systemd/*.timer "$stage/usr/lib/systemd/system/" 2>/dev/null || true
  install -m 0644 "$REPO/systemd/valise.sysusers" "$stage/usr/lib/sysusers.d/valise.conf"
  install -m 0644 "$REPO/systemd/valise.tmpfiles" "$stage/usr/lib/tmpfiles.d/valise.conf"
  for f in "$REPO"/systemd/*.toml; do
    # The image's own copy (mkosi.extra) wins where there is one (firewall.toml: the LAN ranges).
    [ -e "$img/mkosi.extra/etc/valise/$(basename "$f")" ] || install -m 0644 "$f" "$stage/etc/valise/"
  done

  local models
  mapfile -t models < <(awk '/^\[\[model\]\]/{id=""} /^id = /{gsub(/"/,"",$3); id=$3} /^default = true/{print id}' "$REPO/models/catalog.toml")
  for m in "${models[@]}"; do
    [ -d "$store_slot/$m" ] || die "default model $m is not in the dev store $store_slot (scripts/setup)"
    cp -r "$store_slot/$m" "$stage/usr/lib/valise/models/factory/"
  done
  # The dev store's files are owner-only; on the box the engines (their own users) read them.
  chmod -R u=rwX,go=rX "$stage/usr/lib/valise/models"
  awk -v keep="$(printf '%s ' "${models[@]}")" '
    BEGIN { n = split(keep, k, " "); for (i = 1; i <= n; i++) want[k[i]] = 1; head = 1 }
    /^\[\[model\]\]/ { flush(); head = 0; block = $0 "\n"; next }
    { if (head) printf "%s\n", $0; else block = block $0 "\n" }
    /^id = / { id = $3; gsub(/"/, "", id) }
    function flush() { if (block != "" && (id in want)) printf "%s", block; block = ""; id = "" }
    END { flush() }' "$store_slot/manifest.toml" > "$stage/usr/lib/valise/models/factory/manifest.toml"
}
