package gateway

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/auth"
	secretsv1 "github.com/cavedb/cave/proto/cave/secrets/v1"
	"github.com/cavedb/cave/secrets"
)

// SecretsConfig configures secret=true values and the Secrets service.
type SecretsConfig struct {
	// Meta stores the cluster's wrapped keyring under
	// secrets.MetaNamespace: NodeMeta of the node. Required.
	Meta secrets.Store
	// KEK returns the key-encryption key that wraps the cluster key: the
	// content of --kek-file, or DevKEK in dev mode and with --insecure.
	// Every node of a cluster must return the same key. Required.
	KEK func(ctx context.Context) ([]byte, error)
}

// Validate reports every problem with c.
func (c SecretsConfig) Validate() error {
	if c.Meta == nil || c.KEK == nil {
		return errors.New("gateway: Secrets.Meta and Secrets.KEK must be set")
	}
	return nil
}

// DevKEK returns a SecretsConfig.KEK for dev mode and --insecure:
// secrets.DeriveDevKEK of the cluster id. Anyone who can read the cluster
// id can compute it, so it protects nothing; it only keeps the code path
// of prod. It fails until the node has joined a cluster.
func DevKEK(c interface {
	ClusterID(ctx context.Context) (string, error)
}) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		id, err := c.ClusterID(ctx)
		if err != nil {
			return nil, err
		}
		return secrets.DeriveDevKEK(id), nil
	}
}

// seal returns the value to store for a Put of value under key: the value
// itself, or with secret set its envelope, bound to key so that it does
// not decrypt under any other key. Errors are gRPC statuses.
func (s *kvService) seal(ctx context.Context, key string, value []byte, secret bool) ([]byte, error) {
	if !secret {
		return value, nil
	}
	env, err := s.secrets.Encrypt(ctx, value, []byte(key))
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return env, nil
}

// unseal returns what a Get of key returns for the stored value: stored
// itself without secret (the envelope, for a secret), else the plaintext.
// A stored value that is not an envelope is FailedPrecondition: the key
// holds no secret. Errors are gRPC statuses.
func (s *kvService) unseal(ctx context.Context, key string, stored []byte, secret bool) ([]byte, error) {
	if !secret {
		return stored, nil
	}
	if !secrets.IsEnvelope(stored) {
		return nil, status.Errorf(codes.FailedPrecondition, "the value of %q was not written with secret=true; read it without secret", key)
	}
	pt, err := s.secrets.Decrypt(ctx, stored, []byte(key))
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return pt, nil
}

// secretsService implements cave.secrets.v1.Secrets.
type secretsService struct {
	secretsv1.UnimplementedSecretsServer
	m  *secrets.Manager
	lg *slog.Logger
}

// Rotate implements secretsv1.SecretsServer.
func (s *secretsService) Rotate(ctx context.Context, _ *secretsv1.RotateRequest) (*secretsv1.RotateResponse, error) {
	id, n, err := s.m.Rotate(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &secretsv1.RotateResponse{KeyId: uint32(id), KeyCount: uint32(n)}, nil
}

// Status implements secretsv1.SecretsServer.
func (s *secretsService) Status(ctx context.Context, _ *secretsv1.StatusRequest) (*secretsv1.StatusResponse, error) {
	id, n, err := s.m.Status(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &secretsv1.StatusResponse{KeyId: uint32(id), KeyCount: uint32(n)}, nil
}

// MetaNamespaces returns the meta-shard namespaces NodeMeta serves: the
// access policy's and the secrets keyring's. Whoever assembles a node
// registers them with it (node.Config.MetaNamespaces).
func MetaNamespaces() []string { return []string{auth.MetaNamespace, secrets.MetaNamespace} }
