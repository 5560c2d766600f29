module dc-operator/interop/go-tls-client

go 1.22
