"""COS: request signing, the HTTP transport shared with CI, and bucket listing."""
