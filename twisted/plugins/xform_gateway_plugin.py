from twisted.application.service import ServiceMaker

# The same options and service as `xform serve` (see gateway.tap).
xformGateway = ServiceMaker(
    "xform-gateway",
    "gateway.tap",
    "One poetry TransformService over netstrings, AMP, WebSocket and HTTP: xform serve under twistd.",
    "xform-gateway",
)
