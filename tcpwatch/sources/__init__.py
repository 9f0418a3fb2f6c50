"""Socket sources (netlink sock_diag, /proc/net/tcp, recordings) and process owners."""
