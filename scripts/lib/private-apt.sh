# Sourced by the scripts that fetch from Debian's archive without touching the machine's apt
# configuration (kube-build.sh, fetch-tools.sh).
#
#   private_apt DIR LINE...
# makes an apt configuration of its own under DIR (sources, lists, cache, an empty dpkg status)
# whose sources.list holds only the given LINEs, signed by Debian's archive keyring, and sets the
# array `apt_opts` to pass to apt-get. The caller removes DIR when done.

private_apt_keyring=/usr/share/keyrings/debian-archive-keyring.gpg

private_apt() {
  local dir=$1
  shift
  if [ ! -r "$private_apt_keyring" ]; then
    echo "$private_apt_keyring is missing (Debian package debian-archive-keyring)" >&2
    return 1
  fi
  mkdir -p "$dir/etc/sources.list.d" "$dir/etc/preferences.d" "$dir/etc/apt.conf.d" \
    "$dir/lists/partial" "$dir/archives/partial"
  : >"$dir/status"
  printf '%s\n' "$@" >"$dir/etc/sources.list"
  apt_opts=(
    -o "Dir::Etc=$dir/etc"
    -o "Dir::Etc::sourcelist=$dir/etc/sources.list"
    -o "Dir::Etc::sourceparts=$dir/etc/sources.list.d"
    -o "Dir::Etc::preferencesparts=$dir/etc/preferences.d"
    -o "Dir::Etc::parts=$dir/etc/apt.conf.d"
    -o "Dir::State::lists=$dir/lists"
    -o "Dir::State::status=$dir/status"
    -o "Dir::Cache=$dir"
    -o "Dir::Cache::archives=$dir/archives"
    -o "APT::Architecture=$(dpkg --print-architecture)"
    -o "APT::Architectures::=$(dpkg --print-architecture)"
  )
  # As root apt fetches as the _apt user, which cannot write under a private directory: stay root.
  [ "$(id -u)" -ne 0 ] || apt_opts+=(-o "APT::Sandbox::User=root")
}
