/* The operation registry: the single source of truth for what each operation needs (its least role
 * and the shape of its resource). The HTTP router, the C API and every later transport look
 * operations up here; none of them decides access by itself. */
#include <sluice/sluice.h>

#include <string.h>

static const sl_op_info registry[SL_OP__COUNT] = {
    [SL_OP_HEALTH] = {SL_OP_HEALTH, "health", SL_ROLE_NONE, SL_RES_NONE, "check", 0},
    [SL_OP_CHANNEL_LIST] = {SL_OP_CHANNEL_LIST, "channel.list", SL_ROLE_READ, SL_RES_CHANNELS,
                            "list", 0},
    [SL_OP_CHANNEL_INFO] = {SL_OP_CHANNEL_INFO, "channel.info", SL_ROLE_READ, SL_RES_CHANNEL,
                            "read from", 0},
    [SL_OP_CHANNEL_READ] = {SL_OP_CHANNEL_READ, "channel.read", SL_ROLE_READ, SL_RES_CHANNEL,
                            "read from", 0},
    [SL_OP_CHANNEL_WRITE] = {SL_OP_CHANNEL_WRITE, "channel.write", SL_ROLE_WRITE, SL_RES_CHANNEL,
                             "write to", 0},
    [SL_OP_CHANNEL_ACK] = {SL_OP_CHANNEL_ACK, "channel.acknowledge", SL_ROLE_WRITE, SL_RES_CHANNEL,
                           "acknowledge on", 0},
    [SL_OP_CHANNEL_NACK] = {SL_OP_CHANNEL_NACK, "channel.nack", SL_ROLE_WRITE, SL_RES_CHANNEL,
                            "nack on", 0},
    [SL_OP_CHANNEL_CLEAR] = {SL_OP_CHANNEL_CLEAR, "channel.clear", SL_ROLE_ADMIN, SL_RES_CHANNEL,
                             "administer", 1},
    [SL_OP_CHANNEL_EVICT] = {SL_OP_CHANNEL_EVICT, "channel.evict", SL_ROLE_ADMIN, SL_RES_CHANNEL,
                             "administer", 1},
    [SL_OP_CHANNEL_REMOVE] = {SL_OP_CHANNEL_REMOVE, "channel.remove", SL_ROLE_ADMIN, SL_RES_CHANNEL,
                              "administer", 1},
    [SL_OP_CHANNEL_CREATE] = {SL_OP_CHANNEL_CREATE, "channel.create", SL_ROLE_ADMIN, SL_RES_CHANNEL,
                              "administer", 1},
    [SL_OP_CHANNEL_DELETE] = {SL_OP_CHANNEL_DELETE, "channel.delete", SL_ROLE_ADMIN, SL_RES_CHANNEL,
                              "administer", 1},
    [SL_OP_ACL_GRANT] = {SL_OP_ACL_GRANT, "acl.grant", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
                         "manage the ACL", 1},
    [SL_OP_ACL_REVOKE] = {SL_OP_ACL_REVOKE, "acl.revoke", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
                          "manage the ACL", 1},
    [SL_OP_ACL_LIST] = {SL_OP_ACL_LIST, "acl.list", SL_ROLE_ADMIN, SL_RES_NONE, "manage the ACL",
                        0},
    /* Resource: the principal whose tokens are revoked ("*" when the owner is unknown). */
    [SL_OP_TOKEN_REVOKE] = {SL_OP_TOKEN_REVOKE, "token.revoke", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
                            "revoke tokens of", 1, 1},
    /* The channels of a token are decided one by one by the broker's authorizer. */
    [SL_OP_TOKEN_ISSUE] = {SL_OP_TOKEN_ISSUE, "token.issue", SL_ROLE_READ, SL_RES_CHANNELS,
                           "obtain tokens", 1, 0, 0, 1},
    /* Resource: the principal the token is for; the delegation rules decide. */
    [SL_OP_TOKEN_DELEGATE] = {SL_OP_TOKEN_DELEGATE, "token.delegate", SL_ROLE_READ,
                              SL_RES_PRINCIPAL, "mint tokens on behalf of", 1, 0, 1, 1},
    [SL_OP_APIKEY_CREATE] = {SL_OP_APIKEY_CREATE, "apikey.create", SL_ROLE_ADMIN, SL_RES_NONE,
                             "manage API keys", 1},
    [SL_OP_APIKEY_LIST] = {SL_OP_APIKEY_LIST, "apikey.list", SL_ROLE_ADMIN, SL_RES_NONE,
                           "manage API keys", 0},
    [SL_OP_APIKEY_EXPIRE] = {SL_OP_APIKEY_EXPIRE, "apikey.expire", SL_ROLE_ADMIN, SL_RES_NONE,
                             "manage API keys", 1},
    [SL_OP_APIKEY_DELETE] = {SL_OP_APIKEY_DELETE, "apikey.delete", SL_ROLE_ADMIN, SL_RES_NONE,
                             "manage API keys", 1},
    [SL_OP_BROKER_ASSIGN] = {SL_OP_BROKER_ASSIGN, "broker.assign", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
                             "manage broker roles", 1},
    [SL_OP_BROKER_LIST] = {SL_OP_BROKER_LIST, "broker.get", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
                           "manage broker roles", 0},
    /* What acknowledging needs: only the claim holder's own claims are touched. */
    [SL_OP_CHANNEL_EXTEND] = {SL_OP_CHANNEL_EXTEND, "channel.extend", SL_ROLE_WRITE, SL_RES_CHANNEL,
                              "extend leases on", 0},
    [SL_OP_CHANNEL_TERMINATE] = {SL_OP_CHANNEL_TERMINATE, "channel.terminate", SL_ROLE_WRITE,
                                 SL_RES_CHANNEL, "terminate messages on", 0},
    /* the invoke policy: administrators only, changes audited */
    [SL_OP_POLICY_INVOKE_LIST] = {SL_OP_POLICY_INVOKE_LIST, "policy.invoke.list", SL_ROLE_ADMIN,
                                  SL_RES_NONE, "manage the invoke policy", 0},
    [SL_OP_POLICY_INVOKE_SET] = {SL_OP_POLICY_INVOKE_SET, "policy.invoke.set", SL_ROLE_ADMIN,
                                 SL_RES_PRINCIPAL, "manage the invoke policy", 1},
    [SL_OP_POLICY_INVOKE_DELETE] = {SL_OP_POLICY_INVOKE_DELETE, "policy.invoke.delete",
                                    SL_ROLE_ADMIN, SL_RES_PRINCIPAL, "manage the invoke policy", 1},
    /* Drops every cached authorisation decision (the HTTP policy changed). */
    [SL_OP_AUTHZ_INVALIDATE] = {SL_OP_AUTHZ_INVALIDATE, "authz.invalidate", SL_ROLE_ADMIN,
                                SL_RES_NONE, "invalidate authorisation decisions", 1},
    /* Issue 14: the operator's view. Reading is not audited; acting on connections is. */
    [SL_OP_METRICS_READ] = {SL_OP_METRICS_READ, "metrics.read", SL_ROLE_ADMIN, SL_RES_NONE,
                            "read metrics", 0},
    [SL_OP_SERVER_CONNECTIONS] = {SL_OP_SERVER_CONNECTIONS, "server.connections", SL_ROLE_ADMIN,
                                  SL_RES_NONE, "list connections", 0},
    [SL_OP_SERVER_DISCONNECT] = {SL_OP_SERVER_DISCONNECT, "server.disconnect", SL_ROLE_ADMIN,
                                 SL_RES_PRINCIPAL, "disconnect", 1},
    [SL_OP_SERVER_UNSUBSCRIBE] = {SL_OP_SERVER_UNSUBSCRIBE, "server.unsubscribe", SL_ROLE_ADMIN,
                                  SL_RES_CHANNEL, "administer", 1},
    [SL_OP_SERVER_PRESENCE] = {SL_OP_SERVER_PRESENCE, "server.presence", SL_ROLE_ADMIN,
                               SL_RES_CHANNEL, "administer", 0},
    [SL_OP_SERVER_CHANNELS] = {SL_OP_SERVER_CHANNELS, "server.channels", SL_ROLE_ADMIN, SL_RES_NONE,
                               "read channel statistics", 0},
    [SL_OP_AUDIT_READ] = {SL_OP_AUDIT_READ, "audit.read", SL_ROLE_ADMIN, SL_RES_NONE,
                          "read the audit log", 0},
    [SL_OP_CONSOLE] = {SL_OP_CONSOLE, "console", SL_ROLE_NONE, SL_RES_NONE, "load the console", 0},
};

const sl_op_info *sl_op_lookup(sl_op op)
{
    if ((unsigned)op >= SL_OP__COUNT)
        return NULL;
    return &registry[op];
}

const sl_op_info *sl_op_by_name(const char *name)
{
    if (name == NULL)
        return NULL;
    for (unsigned i = 0; i < SL_OP__COUNT; i++)
        if (strcmp(registry[i].name, name) == 0)
            return &registry[i];
    return NULL;
}
