module k2s-dns.local/images/pause

go 1.24
