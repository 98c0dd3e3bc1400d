# mailtrail web console — English
app-name = mailtrail
nav-search = Search
nav-dashboard = Dashboard
nav-sources = Sources
nav-audit = Audit log
nav-sign-out = Sign out
signed-in-as = Signed in as { $user } ({ $role })
role-administrator = administrator
role-viewer = viewer
lang-switch = 日本語

sign-in-title = Sign in
sign-in-user = User name
sign-in-password = Password
sign-in-button = Sign in
sign-in-failed = The user name or password is wrong.
sign-in-throttled = Too many failed attempts. Try again in { $seconds ->
    [one] 1 second
   *[other] { $seconds } seconds
}.

search-title = Search
search-query = Query
search-button = Search
search-help = Words, "phrases", from: to: cc: bcc: subject: filename: body: has:attachment direction: status: system: after: before: newer_than: larger:, -word to exclude, OR — see the README.
search-count = { $count ->
    [one] 1 message
   *[other] { $count } messages
}
search-none = No message matches.
search-error = The query could not be read: { $reason }
search-export-csv = Export CSV
search-export-json = Export JSON
search-previous = Previous
search-next = Next
search-copy = Copy query
search-copied = Copied
search-keys-help = Keys: j / k or ↓ / ↑ to move through the results, Enter to open, / for the query box.
search-attachment = Messages carrying the file { $name } (content hash { $hash }…), in whoever's mailbox or log it was seen.
search-attachment-clear = Back to a query search
filter-period = Period
filter-from-date = From
filter-to-date = To
filter-direction = Direction
filter-any = Any
filter-has-attachment = With attachments only
filter-status = Status
filter-system = System
filter-apply = Apply to the query
filter-legend = Narrow down
filter-help = The conditions are written into the query above, where you can read and edit them.
filter-invalid = The condition could not be written into the query: { $reason }

col-time = Date and time
col-direction = Direction
col-from = From
col-to = To / Cc / Bcc
col-subject = Subject
col-attachments = Attachments
col-size = Size
col-status = Status

direction-inbound = inbound
direction-outbound = outbound
direction-internal = internal
direction-relayed = relayed

status-received = received
status-delivered = delivered
status-deferred = deferred
status-bounced = bounced
status-expired = expired
status-rejected = rejected
status-quarantined = quarantined
status-expanded = expanded
status-forwarded = forwarded
status-failed = failed
status-none = —

message-title = Message
message-id = Message-ID
message-date = Date
message-first-seen = First seen
message-from = From
message-envelope-from = Envelope sender
message-to = To
message-cc = Cc
message-bcc = Bcc
message-envelope-to = Envelope recipients
message-subject = Subject
message-size = Size
message-systems = Seen by
message-auth = Authentication
message-body = Body
message-body-hidden = Message content is visible to administrators only.
message-body-none = Seen only in logs: no content was captured.
message-attachments = Attachments
message-download = Download
message-raw = Download the original message (.eml)
message-trail = Delivery trail
message-trail-none = No delivery events.
message-links-note = Links are shown, not followed; remote images are not loaded.
message-not-found = No such message.

trail-time = Time
trail-system = System
trail-event = Event
trail-recipient = Recipient
trail-detail = Detail

pivot-title = Related mail
pivot-same-sender = Everything from { $address }
pivot-same-subject = The same thread (subject without Re: / Fwd:)
pivot-domain = All mail exchanged with { $domain }
pivot-same-attachment = Every message with this file
pivot-period = What each person sent and received from { $from } to { $to } ({ $days } days either side)
pivot-person = Address
pivot-role = Role
pivot-mail = Mail in this period
pivot-sent = Sent
pivot-received = Received

audit-title = Audit log
audit-user = User
audit-action = Action
audit-target = Target
audit-detail = Detail
audit-ip = From address
audit-filter = Filter
audit-chain-ok = The audit log is intact ({ $count } entries checked).
audit-chain-broken = The audit log was altered at entry { $id }: { $reason }
audit-none = No entries.

error-forbidden = Your role does not allow this.
error-not-found = Not found.
error-csrf = The form expired. Reload the page and try again.
error-internal = Something went wrong on the server. The details are in its log.

dashboard-title = Dashboard
dashboard-show = Show
dashboard-invalid-period = The period could not be read: give two dates (YYYY-MM-DD), the first not after the second, at most a year apart.
dashboard-period-text = { $from } to { $to } ({ $days ->
    [one] 1 day
   *[other] { $days } days
})
dashboard-per-day = Messages per day
dashboard-freshness = Figures are recomputed at most once a minute, so they can be a minute or two old.
dashboard-max = Busiest day: { $count }
dashboard-bar = { $day }, { $direction }: { $count }
dashboard-totals = Totals
dashboard-total = All messages
dashboard-external = External (inbound and outbound)
dashboard-failures = Delivery failures (messages)
dashboard-top-senders = Top senders
dashboard-top-recipients = Top recipients
dashboard-top-domains = Top external domains
dashboard-failing-recipients = Recipients whose delivery failed
dashboard-failing-domains = Domains whose delivery failed
dashboard-largest = Largest attachments
dashboard-address = Address
dashboard-domain = Domain
dashboard-file = File
dashboard-messages = Messages
dashboard-nothing = None in this period.

sources-title = Sources
sources-help = What the running service reports about each collection source (the same as /healthz), as of this page's loading.
source-service = Service
source-status = Status
source-ok = ok
source-failing = failing
source-store = Store
source-records-stored = Records stored
source-queue-depth = Waiting to be stored
source-sources = Source
source-pollers = Poller
source-smtp = SMTP journal receiver
source-syslog = Syslog
source-follow = Followed files
source-connections = Connections
source-messages-stored = Messages stored
source-messages-refused = Messages refused
source-clients-refused = Clients refused
source-tls-failures = TLS failures
source-auth-failures = Authentication failures
source-udp-lines = UDP lines
source-tcp-lines = TCP lines
source-udp-dropped = UDP lines dropped
source-lines = Lines read
source-last-success = Last success
source-last-error = Last error
source-requests = Requests
source-records = Records
source-errors = Errors
source-yes = yes
source-no = no
