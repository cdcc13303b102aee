"""Host side of the VM: image recipe driver, qemu command line, boot, run, collect."""
