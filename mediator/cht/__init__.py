"""CHT's API (CouchDB's protocol, through CHT): the reader and the contacts it keeps."""
