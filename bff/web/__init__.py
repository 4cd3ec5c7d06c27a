"""The web layer: GraphQL over HTTP, bearer tokens, security headers and limits, logs with
request ids, the IDE page, trusted documents, the calendar export, provider webhooks, and
running uvicorn."""
