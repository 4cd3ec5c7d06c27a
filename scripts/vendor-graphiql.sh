#!/usr/bin/env bash
# Refreshes the GraphiQL assets the BFF serves itself (no CDN: health networks are often
# closed, and a third-party script on a health API is a risk). Run from the repo root.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund graphiql@3.9.0 react@18.3.1 react-dom@18.3.1 graphql@16 >/dev/null)
dest=bff/static/graphiql
cp "$work/node_modules/graphiql/graphiql.min.js" "$work/node_modules/graphiql/graphiql.min.css" "$dest/"
cp "$work/node_modules/react/umd/react.production.min.js" "$dest/"
cp "$work/node_modules/react-dom/umd/react-dom.production.min.js" "$dest/"
echo "vendored into $dest"
