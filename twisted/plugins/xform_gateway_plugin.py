from twisted.application.service import ServiceMaker

xformGateway = ServiceMaker(
    "xform-gateway",
    "gateway.tap",
    "One poetry TransformService over netstrings, AMP, WebSocket and HTTP.",
    "xform-gateway",
)
