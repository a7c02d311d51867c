#!/bin/sh
# /lambda-entrypoint.sh of megamode's stand-in for Lambda's Ruby base image (bin/lambda-image), the
# image's ENTRYPOINT. As in AWS's image: the image's CMD is one word, the handler ("handler.handler"),
# which becomes _HANDLER; with AWS_LAMBDA_RUNTIME_API set (on Lambda, or run by megamode) the
# runtime's bootstrap takes over. Without it AWS's image starts its Runtime Interface Emulator, which
# the stand-in does not have: it says so and stops.
if [ "$#" -ne 1 ]; then
  echo "lambda-entrypoint.sh: the image's CMD must be the handler alone (e.g. [\"handler.handler\"]), got $# arguments" >&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
  echo "lambda-entrypoint.sh: AWS_LAMBDA_RUNTIME_API is not set. AWS's image would start the Runtime Interface" \
       "Emulator here; megamode's stand-in image has none. Run the image with \`megamode invoke --image\`" \
       "(or \`megamode serve --image\`), which serves Lambda's Runtime API to it from outside." >&2
  exit 1
fi
exec "${LAMBDA_RUNTIME_DIR:-/var/runtime}/bootstrap"
