#!/usr/bin/env bash
# Install the Debian packages a make target needs when they are missing (as root), or say which to install.
# Usage: scripts/system-packages.sh run|test
set -euo pipefail

target="${1:?usage: $0 run|test}"
missing=()

have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Front-end assets are installed with npm at set-up (both targets serve the same pages).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

# PDFs (the Chinese adverse-reaction report form, later agreements) embed a CJK font.
have_deb fonts-noto-cjk || missing+=(fonts-noto-cjk)

if [ "$target" = test ]; then
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    # xgettext: the translation test extracts strings to prove every one is translated.
    command -v xgettext >/dev/null 2>&1 || missing+=(gettext)
    # The e-mail tests run a local Dovecot IMAP server (tests/mailservers.py).
    [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
    # pdftotext: the report tests read the words back out of the generated PDFs.
    command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
fi

echo "Missing system packages: ${missing[*]}" >&2
echo "Install them with:  sudo apt-get install ${missing[*]}" >&2
if [[ " ${missing[*]} " == *" npm "* || " ${missing[*]} " == *" nodejs "* ]]; then
    exit 1  # without npm there are no front-end assets
fi
if [ "$target" = run ]; then
    echo "Continuing: PDF downloads need a CJK font until fonts-noto-cjk is installed." >&2
    exit 0
fi
echo "Continuing: tests that need a missing tool will be skipped (and fail when CI=true)." >&2
