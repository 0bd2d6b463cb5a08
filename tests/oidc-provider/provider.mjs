// A certified third-party OpenID Provider for the end-to-end sign-in test
// (tests/api/oidc_provider.rs starts it): our relying-party code checked against someone
// else's reading of the spec. Loopback only; everything comes from the environment.
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'taskflow-e2e',
    client_secret: process.env.OP_CLIENT_SECRET,
    redirect_uris: [process.env.OP_REDIRECT_URI],
    post_logout_redirect_uris: [process.env.OP_POST_LOGOUT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: 'Olga Provider', email: 'olga@example.test' }),
  }),
  features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
  pkce: { required: () => true },
});
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
