package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDocument is the OpenAPI 3 description of every route abgate
// serves: proxy, feedback, admin and reports. It is written by hand;
// TestOpenAPIMatchesRoutes keeps it true to the registered routes.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 document (JSON). The caller must not
// modify it.
func OpenAPI() []byte { return openAPIDocument }

func serveOpenAPI(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json", openAPIDocument)
}
