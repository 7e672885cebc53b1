// Evaluates authorizations against one role's identity policies with @cloud-copilot/iam-simulate.
// stdin: {"account", "policies": [policy…], "requests": [{"action", "resource", "context"}…]}
// stdout: [{"result", "allowedBy": [Sid…], "ignored": [context key…], "errors"}…], one per
// request, in order; `ignored` names context keys the action does not have.
import { pathToFileURL } from 'node:url'
import { runSimulation } from '@cloud-copilot/iam-simulate'

// The engine's own parts, for the one case its validating entry point cannot evaluate (below);
// its `runUnsafeSimulation` would do, but fails on a resource policy (it loads one unnamed).
const modules = pathToFileURL(`${process.cwd()}/node_modules/@cloud-copilot/`).href
const engine = `${modules}iam-simulate/dist/esm/`
const { authorize } = await import(`${engine}core_engine/CoreSimulatorEngine.js`)
const { AwsRequestImpl } = await import(`${engine}request/request.js`)
const { RequestContextImpl } = await import(`${engine}requestContext.js`)
const { DiscoveryContextKeyConstraints } = await import(
  `${engine}context_keys/discoveryContextKeyConstraints.js`
)
const { loadPolicy } = await import(`${modules}iam-policy/dist/esm/index.js`)

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const identityPolicies = input.policies.map((policy, i) => ({ name: `policy${i}`, policy }))
const principal = `arn:aws:iam::${input.account}:role/dynamo-dr`

const out = []
// A KMS key is usable only as its key policy allows; the default key policy delegates to the
// account's IAM policies, which are what is evaluated here:
// https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
const defaultKeyPolicy = {
  Version: '2012-10-17',
  Statement: [
    {
      Sid: 'Enable IAM User Permissions',
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${input.account}:root` },
      Action: 'kms:*',
      Resource: '*',
    },
  ],
}

const simulation = (r) => ({
  identityPolicies,
  serviceControlPolicies: [],
  resourceControlPolicies: [],
  ...(r.action.startsWith('kms:') ? { resourcePolicy: defaultKeyPolicy } : {}),
  request: {
    action: r.action,
    principal,
    resource: { resource: r.resource, accountId: input.account },
    contextVariables: r.context ?? {},
  },
})

// The request as given, its context unfiltered, through the engine the simulator runs.
const unvalidated = (r) =>
  authorize({
    request: new AwsRequestImpl(
      principal,
      { resource: r.resource, accountId: input.account },
      r.action,
      new RequestContextImpl(r.context ?? {}),
    ),
    sessionPolicy: undefined,
    identityPolicies: identityPolicies.map((p) => loadPolicy(p.policy, { name: p.name })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: r.action.startsWith('kms:')
      ? loadPolicy(defaultKeyPolicy, { name: 'default key policy' })
      : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]),
    },
    serviceSettings: { s3: {} },
  })

for (const r of input.requests) {
  const response = await runSimulation(simulation(r), {})
  if (response.resultType === 'error') {
    out.push({ result: 'Error', allowedBy: [], errors: response.errors })
    continue
  }
  const result = response.resultType === 'single' ? response.result : response.results[0]
  let overall = response.overallResult
  // The simulator matches variable context keys only after a `/` (`aws:RequestTag/K`), so it
  // drops `kms:EncryptionContext:K`, which AWS documents for every KMS cryptographic operation
  // (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html). With the
  // request validated above, such a request is evaluated again with its context as given.
  const kmsContext = (result?.ignoredContextKeys ?? []).some((k) =>
    k.toLowerCase().startsWith('kms:encryptioncontext:'),
  )
  let allowedBy = (result?.analysis?.identityAnalysis?.allowStatements ?? []).map(
    (s) => s.explain?.identifier ?? s.statement?.sid?.() ?? '?',
  )
  if (kmsContext) {
    const analysis = unvalidated(r)
    overall = analysis.result
    allowedBy = (analysis.identityAnalysis?.allowStatements ?? []).map(
      (s) => s.explain?.identifier ?? s.statement?.sid?.() ?? '?',
    )
  }
  const ignored = kmsContext ? [] : (result?.ignoredContextKeys ?? [])
  out.push({ result: overall, allowedBy, ignored, errors: null })
}
process.stdout.write(JSON.stringify(out))
