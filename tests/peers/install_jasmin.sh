#!/usr/bin/env bash
# Install Jasmin 0.11.0 for tests/carriers/test_jasmin.py, in its own virtualenv under
# ${VERBAL_JASMIN_HOME:-~/.cache/verbal-peers}, never the project's environment.
# Pinned: 0.11.1 drops every delivery receipt (jookies/jasmin#1236).
# RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) must be running; see
# ../shared/spec/smpp.md §2a for starting them by hand.
set -euo pipefail
home="${VERBAL_JASMIN_HOME:-$HOME/.cache/verbal-peers}"
mkdir -p "$home"
cd "$home"
[ -x jasmin-0.11.0/bin/jasmind.py ] || {
  python3 -m venv jasmin-0.11.0
  jasmin-0.11.0/bin/pip install -q 'jasmin==0.11.0'
}
# jasmind needs the AMQP spec files that ship only in the source distribution.
if [ ! -f resource/amqp0-9-1.xml ]; then
  jasmin-0.11.0/bin/pip download -q --no-deps --no-binary :all: 'jasmin==0.11.0' -d sdist
  tar xzf sdist/jasmin-0.11.0.tar.gz jasmin-0.11.0/misc/config/resource
  mkdir -p resource
  cp jasmin-0.11.0/misc/config/resource/*.xml resource/
fi
echo "Jasmin 0.11.0 ready in $home"
