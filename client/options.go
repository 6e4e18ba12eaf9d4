package client

// GetOption changes how Get reads: Stale, Secret.
type GetOption interface{ applyGet(*getOptions) }

// PutOption changes how Put writes: PrevRevision, CreateOnly, Secret.
type PutOption interface{ applyPut(*putOptions) }

// DeleteOption changes how Delete deletes: PrevRevision.
type DeleteOption interface{ applyDelete(*deleteOptions) }

// ListOption changes how List and ListAll list: Stale, Limit, PageToken.
type ListOption interface{ applyList(*listOptions) }

type getOptions struct{ stale, secret bool }

type putOptions struct {
	prev   *int64
	secret bool
}

type deleteOptions struct{ prev *int64 }

type listOptions struct {
	stale bool
	limit int32
	token string
}

// StaleOption is the option of Stale.
type StaleOption struct{}

// Stale makes a Get or List read from any replica, without a round to the
// leader: faster, but it may miss the latest writes.
func Stale() StaleOption { return StaleOption{} }

func (StaleOption) applyGet(o *getOptions)   { o.stale = true }
func (StaleOption) applyList(o *listOptions) { o.stale = true }

// SecretOption is the option of Secret.
type SecretOption struct{}

// Secret makes Put encrypt the value on the server before it is stored,
// and Get decrypt a value written so. Without it Get returns a secret's
// encrypted envelope.
func Secret() SecretOption { return SecretOption{} }

func (SecretOption) applyGet(o *getOptions) { o.secret = true }
func (SecretOption) applyPut(o *putOptions) { o.secret = true }

// RevisionOption is the option of PrevRevision.
type RevisionOption struct{ rev int64 }

// PrevRevision makes a Put or Delete apply only if the key's mod_revision
// is rev; 0 means "only if the key does not exist". Otherwise it fails
// with ErrConditionFailed and changes nothing.
func PrevRevision(rev int64) RevisionOption { return RevisionOption{rev: rev} }

// CreateOnly makes a Put apply only if the key does not exist: it is
// PrevRevision(0).
func CreateOnly() RevisionOption { return PrevRevision(0) }

func (o RevisionOption) applyPut(p *putOptions)       { p.prev = &o.rev }
func (o RevisionOption) applyDelete(d *deleteOptions) { d.prev = &o.rev }

// listOption is an option of List alone.
type listOption func(*listOptions)

func (f listOption) applyList(o *listOptions) { f(o) }

// Limit sets the number of keys per page, at most the server's cap (1000);
// 0, the default, is the server's default.
func Limit(n int32) ListOption { return listOption(func(o *listOptions) { o.limit = n }) }

// PageToken makes List return the page after the one whose
// Page.NextPageToken is token.
func PageToken(token string) ListOption {
	return listOption(func(o *listOptions) { o.token = token })
}
