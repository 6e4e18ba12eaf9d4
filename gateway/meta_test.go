package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/secrets"
)

// TestMetaNamespaces: NodeMeta can serve auth and secrets only while the
// namespaces they use are among those the node lets through MetaGet and
// MetaSwap.
func TestMetaNamespaces(t *testing.T) {
	t.Parallel()
	assert.Equal(t, node.MetaAuth, auth.MetaNamespace)
	assert.Equal(t, node.MetaSecrets, secrets.MetaNamespace)
}
