module dc-operator/test/interop/tls12-client

go 1.22
