package api

import (
	"bytes"
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the HTTP API. The tests of this
// package hold every route and every answer to it (apitest.Handler).
//
//go:embed openapi.json
var openAPI []byte

// OpenAPIPath is where the server serves the document, without a key.
const OpenAPIPath = "/v1/openapi.json"

// OpenAPI returns the OpenAPI 3.1 document of the HTTP API.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
