package synthetic

// Vocabulary pools the prompt templates draw from. They are read-only
// lookup tables: nothing writes to them after initialisation.

var namePrefixes = []string{
	"Nova", "Helix", "Quanta", "Atlas", "Orbit", "Zephyr", "Lumen", "Vertex", "Cobalt", "Ember",
	"Summit", "Pulse", "Nimbus", "Harbor", "Tidal", "Crest", "Apex", "Beacon", "Cedar", "Delta",
	"Echo", "Falcon", "Granite", "Ion", "Juniper", "Kite", "Lattice", "Meridian", "Onyx", "Prism",
	"Quill", "Raven", "Sable", "Titan", "Umbra", "Vela", "Willow", "Yarrow", "Zenith", "Aspen",
	"Birch", "Cinder", "Drift", "Fable", "Glacier", "Horizon", "Iris", "Jasper", "Keystone", "Lyric",
}

var productKinds = []string{
	"CRM", "Pay", "Cloud", "Analytics", "Desk", "Sync", "Mail", "Drive", "POS", "HR",
	"Books", "Ledger", "Router", "Vault", "Chat", "Scheduler", "Insights", "Shield", "Stream", "Forms",
	"Fleet", "Notes", "Checkout", "Monitor", "Gateway",
}

var companyKinds = []string{
	"Labs", "Systems", "Logistics", "Health", "Foods", "Capital", "Energy", "Retail", "Motors", "Media",
	"Insurance", "Pharma", "Robotics", "Telecom", "Partners", "Bank", "Airlines", "Hotels", "Textiles", "Analytics",
}

var firstNames = []string{
	"Amara", "Ben", "Chloé", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ines", "Jonas",
	"Kavya", "Liam", "Mei", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sanjay", "Tomás",
	"Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe", "Aiden", "Bianca", "Carlos", "Daria",
	"Emeka", "Freya", "Gustavo", "Hana", "Isaac", "Julia", "Kofi", "Lena", "Mateo", "Noor",
}

var lastNames = []string{
	"Okafor", "Schmidt", "Tanaka", "Rossi", "Novak", "Haddad", "Johansson", "Kowalski", "Silva", "Nguyen",
	"Fischer", "Moreau", "Patel", "García", "O'Brien", "Lindqvist", "Mensah", "Ivanova", "Costa", "Yamamoto",
	"Dubois", "Müller", "Chen", "Andersen", "Bakker", "Rahman", "Petrov", "Kim", "Santos", "Walsh",
}

var cities = []string{
	"Lisbon", "Nairobi", "Osaka", "Toronto", "Kraków", "Austin", "Lyon", "Bangalore", "Melbourne", "Bogotá",
	"Rotterdam", "Seoul", "Cape Town", "Dublin", "Monterrey", "Helsinki", "Accra", "Denver", "Porto", "Jakarta",
	"Zurich", "Manila", "Edinburgh", "Santiago", "Hamburg", "Istanbul", "Vancouver", "Lagos", "Milan", "Taipei",
}

var industries = []string{
	"retail banking", "logistics", "healthcare", "insurance", "e-commerce", "telecommunications", "manufacturing",
	"hospitality", "energy", "pharmaceuticals", "public sector", "education", "media", "automotive", "real estate",
	"agriculture", "aviation", "gaming", "legal services", "consumer electronics",
}

var departments = []string{
	"finance", "engineering", "sales", "marketing", "customer support", "legal", "operations", "procurement",
	"human resources", "security", "data science", "facilities", "product", "compliance",
}

var plans = []string{"Free", "Starter", "Team", "Pro", "Business", "Enterprise", "Premium", "Growth"}

var metrics = []string{
	"monthly active users", "churn rate", "conversion rate", "net promoter score", "p95 latency",
	"gross margin", "ticket backlog", "average order value", "first-response time", "on-time delivery rate",
	"customer acquisition cost", "weekly retention", "error budget burn", "inventory turnover",
}

var months = []string{
	"January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
	"November", "December",
}

var weekdays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

var regions = []string{"eu-west-1", "us-east-2", "ap-southeast-1", "eu-central-1", "us-west-2", "sa-east-1", "ap-northeast-1"}

var components = []string{
	"load balancer", "DNS record", "database connection pool", "feature flag", "TLS certificate", "message queue",
	"cache cluster", "deployment pipeline", "rate limiter", "service mesh sidecar", "cron job", "storage bucket policy",
}

var audiences = []string{
	"the executive team", "new engineers joining the team", "our customers", "a ten-year-old", "the legal department",
	"investors", "non-technical stakeholders", "the on-call rotation", "the board", "a regulator", "the sales team",
}

var tones = []string{"formal", "friendly", "concise", "playful", "neutral", "empathetic", "enthusiastic", "sober"}

var topics = []string{
	"remote work", "supply-chain resilience", "renewable energy", "urban cycling", "data privacy", "ocean plastics",
	"quantum computing", "coffee culture", "space tourism", "four-day work weeks", "electric vehicles", "bee colonies",
	"vertical farming", "open-source software", "city libraries", "night trains", "AI regulation", "microplastics",
	"public transport", "heat pumps", "sourdough baking", "chess engines", "language learning", "wildfire prevention",
	"small-business lending", "cybersecurity awareness", "sleep science", "tidal power", "museum digitisation",
}

var creativeSubjects = []string{
	"a lighthouse keeper", "an old robot", "a city at dawn", "a lost umbrella", "the first day of spring",
	"a retired astronaut", "a cat who runs a bakery", "the last train home", "a forgotten password", "a mountain village",
	"a time-travelling librarian", "a data centre at night", "a migrating whale", "a kitchen during a storm",
	"an AI learning to paint", "two rival food trucks", "a garden on Mars", "a grandmother's recipe book",
}

var creativeWords = []string{
	"lantern", "velvet", "echo", "harbour", "copper", "whisper", "orbit", "marble", "thistle", "signal",
	"meadow", "ember", "glass", "compass", "saffron", "ledger", "tide", "quartz", "feather", "circuit",
}

var expenses = []string{"meals", "hotel nights", "train tickets", "home-office equipment", "conference fees", "taxis", "mobile data", "training courses"}

var docKinds = []string{"policy", "handbook", "FAQ", "runbook", "product sheet", "release notes", "contract", "knowledge-base article"}

// langSpec describes one programming language for code prompts.
type langSpec struct {
	Name    string
	Libs    []string
	Test    string
	Snippet string // "python", "go", "js" or "" when no snippet template exists
}

var languages = []langSpec{
	{"Python", []string{"pandas", "FastAPI", "asyncio", "SQLAlchemy", "requests", "pydantic", "NumPy"}, "pytest", "python"},
	{"Go", []string{"net/http", "database/sql", "encoding/json", "sync", "context", "gorilla/mux"}, "the testing package", "go"},
	{"TypeScript", []string{"React", "Express", "zod", "Prisma", "RxJS", "Node streams"}, "Jest", "js"},
	{"JavaScript", []string{"Express", "lodash", "Node fs/promises", "axios", "Vue"}, "Vitest", "js"},
	{"Java", []string{"Spring Boot", "JDBC", "Jackson", "java.util.concurrent", "Hibernate"}, "JUnit 5", ""},
	{"Rust", []string{"tokio", "serde", "reqwest", "rayon", "clap"}, "cargo test", ""},
	{"C#", []string{"ASP.NET Core", "LINQ", "Entity Framework", "System.Text.Json"}, "xUnit", ""},
	{"Kotlin", []string{"coroutines", "Ktor", "kotlinx.serialization", "Exposed"}, "JUnit 5", ""},
	{"SQL", []string{"PostgreSQL", "window functions", "CTEs", "MySQL 8"}, "a few example rows", ""},
	{"Ruby", []string{"Rails", "ActiveRecord", "Sidekiq", "RSpec"}, "RSpec", ""},
	{"C++", []string{"the STL", "std::thread", "Boost.Asio", "std::ranges"}, "GoogleTest", ""},
	{"Bash", []string{"awk", "sed", "jq", "curl", "find"}, "bats", ""},
}

var entities = []string{"customer", "order", "invoice", "shipment", "employee", "ticket", "device", "sensor reading", "transaction", "booking", "user", "product"}

var entityFields = []string{"email", "id", "created_at", "amount", "status", "country", "sku", "timestamp", "region", "score"}

var identifiers = []string{"items", "records", "rows", "values", "entries", "events", "batch", "buf", "data", "payload"}

// placeholderPools maps each placeholder key that stands for one word of a
// pool above to that pool ({city} is one of cities).
var placeholderPools = map[string][]string{
	"first":     firstNames,
	"city":      cities,
	"industry":  industries,
	"dept":      departments,
	"plan":      plans,
	"metric":    metrics,
	"month":     months,
	"weekday":   weekdays,
	"region":    regions,
	"component": components,
	"audience":  audiences,
	"tone":      tones,
	"topic":     topics,
	"subject":   creativeSubjects,
	"word":      creativeWords,
	"expense":   expenses,
	"dockind":   docKinds,
	"entity":    entities,
	"field":     entityFields,
	"ident":     identifiers,
}
