"""pmemkit: experiments on whether Linux persistent memory needs `struct page`, on real DAX in a VM."""

__version__ = "0.1.0"
