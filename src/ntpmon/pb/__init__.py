"""Generated protobuf code; run `make generate`."""
