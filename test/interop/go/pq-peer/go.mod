module dc-operator/test/interop/pq-peer

go 1.26
