#!/usr/bin/env bash
# Installs what the server proofs need, only what is missing (idempotent; run as root):
#   memcached 1.6.18 (the reference server), nutcracker (twemproxy 0.5.0) and libmemcached-tools
#   (memccapable, memcaslap, memcslap, ...) from Debian, and pymemcache 4.0.0 for the python3 on
#   PATH.
set -euo pipefail

apt_pkgs=()
command -v memcached >/dev/null 2>&1 || apt_pkgs+=(memcached)
command -v nutcracker >/dev/null 2>&1 || [[ -x /usr/sbin/nutcracker ]] || apt_pkgs+=(nutcracker)
{ command -v memccapable || command -v memcapable; } >/dev/null 2>&1 || apt_pkgs+=(libmemcached-tools)
if ((${#apt_pkgs[@]})); then
    echo "install-deps: apt-get install ${apt_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

if ! python3 -c 'import pymemcache, sys; sys.exit(pymemcache.__version__ != "4.0.0")' 2>/dev/null; then
    echo "install-deps: pip install pymemcache==4.0.0"
    pip_install() { python3 -m pip install --quiet --disable-pip-version-check "$@" pymemcache==4.0.0; }
    # pyenv / venv python first; a Debian system python refuses without the last flag
    pip_install 2>/dev/null || pip_install --user 2>/dev/null || pip_install --break-system-packages
fi

echo "install-deps: $(memcached -V), $(command -v memccapable || command -v memcapable)," \
     "pymemcache $(python3 -c 'import pymemcache; print(pymemcache.__version__)'), $(python3 --version)"
