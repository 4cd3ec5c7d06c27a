"""The domain: appointments and persons as plain objects, the rules of what is shown and
who may see or cancel it, the sources file, opaque ids and pseudonyms, Oslo time, and the
errors a client may see. Imports nothing of the project outside itself."""
