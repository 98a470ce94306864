"""cron's mail for imported jobs: the script that is their `shell` (`cron-mail.sh`).

cron runs `$SHELL -c COMMAND` with the output on a pipe and mails what comes through it,
if anything, when the command ends. jaz runs a job as `SHELL -c SCRIPT` too, so a job
whose `shell` is this script gets the same: the command under the crontab's SHELL, its
output on to the job's log as it comes, and then the mail (docs/migration.md).
"""

from __future__ import annotations

__all__ = ["MAIL_SCRIPT", "MAIL_WRAPPER"]

MAIL_WRAPPER = "cron-mail.sh"

MAIL_SCRIPT = r"""#!/bin/sh
# Written by `jaz import crontab`: cron's mail for the jobs imported from a crontab.
# Their `shell` is this file, so jaz runs it as `cron-mail.sh -c COMMAND`, the way cron
# runs `$SHELL -c COMMAND`. It runs the command with $SHELL (the crontab's, else
# /bin/sh), passes its output on to the job's log as it comes, and, as cron does, mails
# that output (stdout and stderr together) when there is any: to $MAILTO (addresses
# separated by commas), or, with no MAILTO at all, to the user the job runs as.
# MAILTO="" mails nobody. The mail goes through $SENDMAIL (default /usr/sbin/sendmail)
# with `-t -i`; MAILFROM, if set, is its From. The job's exit status is the command's;
# a mail that cannot be sent is said on stderr and changes nothing else.
if [ "$#" -ne 2 ] || [ "$1" != "-c" ]; then
  echo "usage: $0 -c COMMAND" >&2
  exit 2
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/jaz-cron.XXXXXX") || exit 1
{ "${SHELL:-/bin/sh}" -c "$2"; echo "$?" > "$dir/rc"; } 2>&1 | tee "$dir/out"
rc=$(cat "$dir/rc" 2>/dev/null)
to=${MAILTO-$(id -un)}
if [ -n "$to" ] && [ -s "$dir/out" ]; then
  subject=$(printf '%s
' "$2" | head -n 1)
  {
    printf 'To: %s
' "$to"
    if [ -n "${MAILFROM-}" ]; then printf 'From: %s
' "$MAILFROM"; fi
    printf 'Subject: Cron <%s@%s> %s
' "$(id -un)" "$(uname -n)" "$subject"
    printf 'Auto-Submitted: auto-generated
'
    printf 'Content-Type: text/plain; charset=UTF-8

'
    cat "$dir/out"
  } | "${SENDMAIL:-/usr/sbin/sendmail}" -t -i ||
    echo "cron-mail.sh: could not mail the output to $to" >&2
fi
rm -rf "$dir"
exit "${rc:-1}"
"""
