"""What a scan reads: the input as a value and `open_input` (`inputs`), the bucket's
Inventory (`inventory`), URL lists (`urls`) and a shard's part of any of them (`shard`)."""
