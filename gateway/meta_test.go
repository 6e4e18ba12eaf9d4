package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/secrets"
)

// TestMetaNamespaces: the namespaces the assembler registers with the node
// are the ones auth and secrets keep their records under.
func TestMetaNamespaces(t *testing.T) {
	t.Parallel()
	assert.ElementsMatch(t, []string{auth.MetaNamespace, secrets.MetaNamespace}, MetaNamespaces())
}
