from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    IMPRESSION: _ClassVar[EventType]
    CLICK: _ClassVar[EventType]
    EVENT: _ClassVar[EventType]
    CONVERSION: _ClassVar[EventType]

class Validation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALIDATION_UNSPECIFIED: _ClassVar[Validation]
    OK: _ClassVar[Validation]
    UNKNOWN_PROGRAM: _ClassVar[Validation]
    INACTIVE: _ClassVar[Validation]
    OUTSIDE_WINDOW: _ClassVar[Validation]
    CUSTOMER_MISMATCH: _ClassVar[Validation]
    UNVERIFIED: _ClassVar[Validation]

class Consent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_UNSPECIFIED: _ClassVar[Consent]
    CONSENT_NOT_APPLICABLE: _ClassVar[Consent]
    CONSENT_GRANTED: _ClassVar[Consent]
    CONSENT_DENIED: _ClassVar[Consent]

class InvalidTraffic(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IVT_NONE: _ClassVar[InvalidTraffic]
    IVT_KNOWN_CRAWLER: _ClassVar[InvalidTraffic]
    IVT_PREFETCH: _ClassVar[InvalidTraffic]
    IVT_DUPLICATE_CLICK: _ClassVar[InvalidTraffic]
    IVT_BAD_SIGNATURE: _ClassVar[InvalidTraffic]
    IVT_EXPIRED_LINK: _ClassVar[InvalidTraffic]
EVENT_TYPE_UNSPECIFIED: EventType
IMPRESSION: EventType
CLICK: EventType
EVENT: EventType
CONVERSION: EventType
VALIDATION_UNSPECIFIED: Validation
OK: Validation
UNKNOWN_PROGRAM: Validation
INACTIVE: Validation
OUTSIDE_WINDOW: Validation
CUSTOMER_MISMATCH: Validation
UNVERIFIED: Validation
CONSENT_UNSPECIFIED: Consent
CONSENT_NOT_APPLICABLE: Consent
CONSENT_GRANTED: Consent
CONSENT_DENIED: Consent
IVT_NONE: InvalidTraffic
IVT_KNOWN_CRAWLER: InvalidTraffic
IVT_PREFETCH: InvalidTraffic
IVT_DUPLICATE_CLICK: InvalidTraffic
IVT_BAD_SIGNATURE: InvalidTraffic
IVT_EXPIRED_LINK: InvalidTraffic

class TrackingEvent(_message.Message):
    __slots__ = ("programid", "checksum", "customer_id", "user_agent", "program_name", "customer_name", "is_valid", "message_id", "event_type", "timestamp_ms", "validation", "client_ip_anonymized", "referer", "params", "tracker_instance", "requested_customer_id", "consent", "visitor_id", "user_key", "gpc", "ivt", "billable", "click_id", "order_id", "value_micros", "currency", "attribution_window_days", "original_click_id")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROGRAMID_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_NAME_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    IS_VALID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_ANONYMIZED_FIELD_NUMBER: _ClassVar[int]
    REFERER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TRACKER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    VISITOR_ID_FIELD_NUMBER: _ClassVar[int]
    USER_KEY_FIELD_NUMBER: _ClassVar[int]
    GPC_FIELD_NUMBER: _ClassVar[int]
    IVT_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_FIELD_NUMBER: _ClassVar[int]
    CLICK_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_MICROS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_CLICK_ID_FIELD_NUMBER: _ClassVar[int]
    programid: str
    checksum: str
    customer_id: int
    user_agent: str
    program_name: str
    customer_name: str
    is_valid: bool
    message_id: str
    event_type: EventType
    timestamp_ms: int
    validation: Validation
    client_ip_anonymized: str
    referer: str
    params: _containers.ScalarMap[str, str]
    tracker_instance: str
    requested_customer_id: int
    consent: Consent
    visitor_id: str
    user_key: str
    gpc: bool
    ivt: InvalidTraffic
    billable: bool
    click_id: str
    order_id: str
    value_micros: int
    currency: str
    attribution_window_days: int
    original_click_id: str
    def __init__(self, programid: _Optional[str] = ..., checksum: _Optional[str] = ..., customer_id: _Optional[int] = ..., user_agent: _Optional[str] = ..., program_name: _Optional[str] = ..., customer_name: _Optional[str] = ..., is_valid: _Optional[bool] = ..., message_id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., timestamp_ms: _Optional[int] = ..., validation: _Optional[_Union[Validation, str]] = ..., client_ip_anonymized: _Optional[str] = ..., referer: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., tracker_instance: _Optional[str] = ..., requested_customer_id: _Optional[int] = ..., consent: _Optional[_Union[Consent, str]] = ..., visitor_id: _Optional[str] = ..., user_key: _Optional[str] = ..., gpc: _Optional[bool] = ..., ivt: _Optional[_Union[InvalidTraffic, str]] = ..., billable: _Optional[bool] = ..., click_id: _Optional[str] = ..., order_id: _Optional[str] = ..., value_micros: _Optional[int] = ..., currency: _Optional[str] = ..., attribution_window_days: _Optional[int] = ..., original_click_id: _Optional[str] = ...) -> None: ...
