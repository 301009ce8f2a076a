package query

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/orderflow/orderflow/processor/machine"
)

// machine serves GET /v1/machine[?format=json|mermaid|dot|text]: the state
// machine from its own table, so the API can never describe another one.
func (s *Server) machine(c *gin.Context) {
	q, aerr := params(c, "format")
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	format := "json"
	if v, ok := q["format"]; ok {
		format = v[0]
	}
	switch format {
	case "json":
		writeJSON(c, http.StatusOK, machine.Describe())
	case "mermaid":
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(machine.Mermaid()))
	case "dot":
		c.Data(http.StatusOK, "text/vnd.graphviz; charset=utf-8", []byte(machine.DOT()))
	case "text":
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(machine.Text()))
	default:
		writeError(c, badRequest(CodeInvalidParameter, "format %q is not one of json, mermaid, dot, text", truncate(format, 32)))
	}
}
