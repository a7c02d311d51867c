# Shared by bin/debian13 and bin/lambda-root (sourced, not run): Debian roots made with debootstrap on
# tmpfs, and commands run inside one in a private mount namespace.

roots_lib=${BASH_SOURCE[0]}

# roots_debootstrap WHO SUITE DIR MIRROR: a minbase Debian SUITE in DIR (emptied first). WHO names the
# caller in messages; when debootstrap fails, its log (DIR.log) is kept and its end shown.
roots_debootstrap() {
  local who=$1 suite=$2 dir=$3 mirror=$4
  command -v debootstrap >/dev/null || { echo "$who: debootstrap is missing: run bin/setup" >&2; exit 1; }
  rm -rf "$dir"
  mkdir -p "$dir"
  debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 ||
    { echo "$who: debootstrap failed; its log: $dir.log" >&2; tail -20 "$dir.log" >&2; exit 1; }
  rm -f "$dir.log"
}

# roots_enter ROOT WORKDIR BIND... -- VAR=VALUE... -- CMD...
# Runs CMD chrooted in ROOT, in WORKDIR, with only the VAR=VALUE environment, in a private mount
# namespace: proc, the host's /dev, a fresh tmpfs /tmp, and each BIND (a host directory mounted at the
# same path, or SRC=DST) bind-mounted; /etc/resolv.conf is the host's. Everything mounted vanishes
# with the namespace when CMD ends; the exit status is CMD's.
# With ROOTS_LAYERS (overlayfs lower directories, topmost first, colon-separated), the root is those
# layers merged and mounted on ROOT (an empty directory); writes go to ROOTS_UPPER when set (kept,
# with ROOTS_UPPER.work beside it), else to a tmpfs that vanishes, leaving the layers untouched.
roots_enter() {
  unshare --mount --propagation private bash -euo pipefail -c 'source "$1"; shift; roots_namespace "$@"' \
    bash "$roots_lib" "${ROOTS_LAYERS:-}" "${ROOTS_UPPER:-}" "$@"
}

# The inside of roots_enter, run in the new namespace.
roots_namespace() {
  local layers=$1 upper=$2 root=$3 dir=$4 bind src env=()
  shift 4
  local binds=()
  while [ "$1" != -- ]; do binds+=("$1"); shift; done
  shift
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  if [ -n "$layers" ]; then
    mount -t tmpfs -o mode=755 scratch "$root"
    if [ -z "$upper" ]; then
      upper=$root/upper
      mkdir "$upper"
    fi
    mkdir -p "$upper.work" "$root/root"
    mount -t overlay overlay -o "lowerdir=$layers,upperdir=$upper,workdir=$upper.work" "$root/root"
    root=$root/root
  else
    # The root is a mount point of its own, as / is on a real system: tools that remount / (unshare,
    # the Lambda-like filesystem of the specs) need that. (An overlay is one already.)
    mount --bind "$root" "$root"
  fi
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=1777 tmp "$root/tmp"
  for bind in ${binds[@]+"${binds[@]}"}; do
    src=${bind%%=*}
    [ -d "$src" ] || continue
    mkdir -p "$root${bind#*=}"
    mount --bind "$src" "$root${bind#*=}"
  done
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  exec chroot "$root" /usr/bin/env -i "${env[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$dir" "$@"
}
